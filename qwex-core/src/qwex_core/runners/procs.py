"""Telling whether a process we started is still the same live process (pid reuse aside)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess


def start_time(pid: int) -> int | None:
    """The kernel start time of live process `pid` (clock ticks since boot), or None if it
    is gone or a zombie. Falls back to a plain liveness check where /proc is missing."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return 0 if _alive(pid) else None
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_running(pid: int, started: int | None) -> bool:
    """True while `pid` is alive and (when known) started at `started`."""
    now = start_time(pid)
    return now is not None and (started in (None, 0) or now == started)


def kill_group(pgid: int, signum: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_exit(child: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait up to `seconds` for our `child` to exit, and reap it if it did.

    `Popen.wait(timeout)` polls, sleeping in steps that grow to 50 ms: a run's end was seen
    up to 50 ms after its agent exited. A pidfd is readable the moment the child exits. It is
    opened only while the child is unreaped, so its pid cannot be another process's."""
    if child.returncode is not None:
        return
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):  # not Linux 5.3 or later: poll as before
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=seconds)
        return
    try:
        select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)
    child.poll()
