"""Opt-in phase timestamps for the bench's breakdown of where a `qwex run` spends its time.

`QWEX_TIMINGS=1` writes `qwex-timing PHASE EPOCH_SECONDS CPU_SECONDS` lines to stderr
(wall clock, comparable between processes, and this process's CPU time), any other value
names a file they are appended to. Unset, `mark` returns after one test of a
module constant: nothing is imported, nothing is written.
"""

from __future__ import annotations

import os
import time

TARGET = os.environ.get("QWEX_TIMINGS") or None


def mark(phase: str) -> None:
    """Note that `phase` is done now (wall clock, comparable with other processes)."""
    if TARGET is not None:
        _write(f"qwex-timing {phase} {time.time():.6f} {time.process_time():.6f}\n")


def _write(line: str) -> None:
    if TARGET == "1":
        os.write(2, line.encode())
        return
    fd = os.open(TARGET or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
