"""The example third-party plugin, installed into a fresh virtual environment with qwex-core only."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_example_plugin_in_a_fresh_venv(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("QWEX_", "PYTHON", "VIRTUAL_ENV"))
    }
    subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(ROOT / "qwex-core"),
            f"{ROOT / 'examples' / 'qwex-nice'}[test]",
        ],
        check=True,
        env=clean,
        timeout=600,
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.qwex.nice]\nniceness = 7\n")

    def qwex(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "qwex"), *args],
            cwd=project,
            env=clean,
            capture_output=True,
            text=True,
            timeout=120,
        )

    backends = json.loads(qwex("backends", "--json").stdout)["backends"]
    assert {(b["name"], b["distribution"]) for b in backends} == {
        ("local", "qwex-core"),
        ("nice", "qwex-nice"),
    }
    result = qwex(
        "run", "--backend", "nice", "--", "nice"
    )  # `nice` alone prints the current niceness
    assert result.returncode == 0, result.stderr
    assert result.stdout == "7\n"
    assert json.loads(qwex("list", "--json").stdout)[0]["backend"] == "nice"
    suite = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "examples" / "qwex-nice" / "tests"),
        ],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert " passed" in suite.stdout and "failed" not in suite.stdout
