"""`nox -s tests` counts on pytest-xdist's `--dist loadgroup` keeping each group of tests
(tests/conftest.py's SHARED_GROUPS: the cluster's, the Docker daemon's, Slurm's) on one worker.
pytest 9.2 with xdist 3.8 stopped honouring the groups without a word: the tests were spread
over every worker, and the cluster's `qwex gc` tests took each other's Jobs. This catches the
next such pair."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MODULE = """
import os
import pytest

@pytest.mark.xdist_group("together")
@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])
"""


def test_a_group_of_tests_runs_on_one_worker(tmp_path: Path) -> None:
    pytest.importorskip("xdist")
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(MODULE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "3",
            "--dist",
            "loadgroup",
            "-rA",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    workers = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("WORKER ")}
    assert len(workers) == 1, f"the group ran on {sorted(workers)}:\n{done.stdout[-2000:]}"
