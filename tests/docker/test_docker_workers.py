"""`--nodes` and `--array` on the Docker backend: the workers as processes of one container
(loopback rendezvous), the same script as locally and on the cluster."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from docker_support import BUSYBOX, PYTHON
from workers_support import ALLREDUCE, TASK, most_at_once

pytestmark = pytest.mark.docker
Qwex = Callable[..., CompletedProcess[str]]


def test_two_workers_all_reduce_in_a_container(
    project: Path, qwex: Qwex, docker_ready: Any
) -> None:
    (project / "allreduce.py").write_text(ALLREDUCE)
    result = qwex(
        "run",
        "-b",
        "docker",
        "--image",
        PYTHON,
        "--nodes",
        "2",
        "--",
        "python",
        "allreduce.py",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "[0] rank 0 of 2: sum 3 (node rank 0)",
        "[1] rank 1 of 2: sum 3 (node rank 1)",
    ]
    run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    assert qwex("logs", "--rank", "0", run_id, check=True).stdout == (
        "rank 0 of 2: sum 3 (node rank 0)\n"
    )


def test_a_failed_worker_stops_the_others(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    script = 'if [ "$RANK" = 1 ]; then exit 5; fi; sleep 60'
    result = qwex(
        "run",
        "-b",
        "docker",
        "--image",
        BUSYBOX,
        "--nodes",
        "2",
        "--",
        "sh",
        "-c",
        script,
        timeout=50,  # not the other worker's 60 s
    )
    assert result.returncode == 5
    assert "worker 1 failed: exit code 5; the other workers were stopped" in result.stderr


def test_an_array_under_its_limit(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    (project / "task.py").write_text(TASK)
    result = qwex(
        "run",
        "-b",
        "docker",
        "--image",
        PYTHON,
        "--array",
        "0-5%2",
        "--",
        "python",
        "task.py",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert most_at_once(result.stdout) == (2, set(range(6)))
