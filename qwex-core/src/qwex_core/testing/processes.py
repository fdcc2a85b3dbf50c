"""What of a run still runs on this machine: the suite's default look after every end.

A run's processes are found by what marks them, not by what the runner says: the
`QWEX_RUN_ID=<id>` a runner puts in the agent's environment (the command inherits
it), the run folder on the agent's command line, and the process groups of the
agent and of the command (their pids, as the record has them, when the run's host
is this machine). Linux only (`/proc`); elsewhere nothing is found.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from qwex_core.models import Run


def processes_of_run(run: Run, run_dir: Path) -> list[str]:
    """The live processes of `run` on this machine, each as "pid N (command line)"."""
    groups: set[int] = set()
    if run.host in (socket.gethostname(), os.uname().nodename):
        groups = {p for p in (run.pid, run.agent_pid) if p}
    marker = f"\0QWEX_RUN_ID={run.id}\0".encode()
    folder = str(run_dir).encode()
    found = []
    for pid, group, cmdline in _live():
        if group in groups or folder in cmdline or marker in b"\0" + _environ(pid):
            found.append(_name(pid, cmdline))
    return found


def processes_in_groups(groups: Iterable[int]) -> list[str]:
    """The live processes whose process group is one of `groups`."""
    wanted = set(groups)
    return [_name(pid, cmdline) for pid, group, cmdline in _live() if group in wanted]


def _live() -> Iterator[tuple[int, int, bytes]]:
    """(pid, process group, command line) of every live process but this one (no zombies)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if fields[0] in (b"Z", b"X"):
            continue
        yield int(entry), int(fields[2]), cmdline


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _name(pid: int, cmdline: bytes) -> str:
    text = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"pid {pid} ({text[:120]})"
