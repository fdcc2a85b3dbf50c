"""docs/quickstart.md's team-server block, as written: a real `qwex serve` started by the
block itself, a token, a run submitted through the `remote` backend to the server's
Docker, on a free port in place of 8765 (another server on the machine may hold it) and
with the offline test image in place of `python:3.11`."""

from __future__ import annotations

from pathlib import Path

import pytest
from quickstart import blocks, run_block
from server_support import free_port

pytestmark = pytest.mark.serve
PYTHON_IMAGE = "qwex-test/python"  # `nox -s images` builds it


def test_the_server_quick_start_runs_as_written(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_ready: None
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the server's database
    [body] = blocks("serve")
    assert "8765" in body
    body = body.replace("8765", str(free_port())).replace("python:3.11", PYTHON_IMAGE)
    result = run_block(body, project, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from the server" in result.stdout
