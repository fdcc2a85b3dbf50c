"""Helpers shared by the CLI tests (importable as `cli_support`): the installed console
script, waiting for a run's status, reading a pid a command wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
LIVE = {"pending", "queued", "running"}


def wait_status(
    qwex: Qwex, run_id: str, want: set[str] | None = None, timeout: float = 30
) -> dict[str, Any]:
    """The run's record once its status is in `want` (default: any final status)."""
    deadline = time.monotonic() + timeout
    while True:
        rec: dict[str, Any] = json.loads(qwex("status", run_id, "--json", check=True).stdout)
        if rec["status"] in want if want is not None else rec["status"] not in LIVE:
            return rec
        assert time.monotonic() < deadline, (
            f"run {run_id} stayed {rec['status']} for {timeout}s, wanted {want or 'an end'}"
        )
        time.sleep(0.05)


def pid_in(path: Path, timeout: float = 10) -> int:
    """The pid a command wrote to `path`, once it has written it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"nothing written to {path}"
        time.sleep(0.02)
    return int(path.read_text())
