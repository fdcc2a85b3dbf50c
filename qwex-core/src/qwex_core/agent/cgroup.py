"""The cgroups of a run, as the agent sees them: telling an OOM kill from any other
SIGKILL, putting the command in the run's own cgroup, emptying and removing it.

OOM: if the command died of SIGKILL and the memory cgroup's `oom_kill` counter went
up meanwhile, the kernel's out-of-memory killer sent it. The counter is the run's own
cgroup's when the local runner made one for it (`--cgroup`), else the agent's (a
container's, which the agent shares with the command). Works with cgroup v2
(`memory.events`) and v1 (`memory.oom_control`); elsewhere the counter is unknown.

A run's own cgroups (one folder per v1 hierarchy, or one v2 folder) are made by the
local runner (`qwex_core.runners.cgroups`); the agent moves the command into them
between fork and exec, so that its whole process tree is inside from its first
instruction, and removes them once everything in them is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time

PROCS = "cgroup.procs"


def _memory_dirs() -> list[tuple[str, str, str]]:
    """Candidate (folder, events file, limit file) for this process's memory cgroup, best first."""
    try:
        with open("/proc/self/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        path = path.rstrip("/")
        if controllers == "":  # v2; inside a cgroup namespace the own cgroup is the root
            for folder in (f"/sys/fs/cgroup{path}", "/sys/fs/cgroup"):
                found.append((folder, "memory.events", "memory.max"))
        elif "memory" in controllers.split(","):  # v1; containers see their own at the root
            for folder in (f"/sys/fs/cgroup/memory{path}", "/sys/fs/cgroup/memory"):
                found.append((folder, "memory.oom_control", "memory.limit_in_bytes"))
    return found


def _run_memory_dirs(folders: list[str]) -> list[tuple[str, str, str]]:
    """The memory folder among a run's own cgroups (v2's one folder, or v1's memory one)."""
    found = []
    for folder in folders:
        if os.path.exists(os.path.join(folder, "memory.events")):
            found.append((folder, "memory.events", "memory.max"))
        elif os.path.exists(os.path.join(folder, "memory.oom_control")):
            found.append((folder, "memory.oom_control", "memory.limit_in_bytes"))
    return found


def oom_kills(folders: list[str] | None = None) -> tuple[int, str] | None:
    """(oom_kill count, cgroup folder) of the run's own cgroups `folders` when given (and
    one has a memory controller), else of this process's; None when it cannot be read."""
    candidates = _run_memory_dirs(folders) if folders else []
    for folder, events, _ in candidates or _memory_dirs():
        try:
            with open(os.path.join(folder, events)) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value), folder
        except (OSError, ValueError):
            continue
    return None


def memory_limit(folder: str) -> str | None:
    """The cgroup's memory limit, e.g. `64Mi`, or None when unlimited or unknown."""
    for name in ("memory.max", "memory.limit_in_bytes"):
        try:
            with open(os.path.join(folder, name)) as fh:
                value = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if value >= 1 << 60:
            return None
        for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
            if value % size == 0:
                return f"{value // size}{unit}"
        return f"{value} bytes"
    return None


def oom_reason(before: tuple[int, str] | None, folders: list[str] | None = None) -> str | None:
    """The `OOMKilled` reason when the counter read at start (`before`, by
    `oom_kills(folders)`) has gone up since."""
    if before is None:
        return None
    count, folder = before
    now = oom_kills(folders)
    if now is None or now[1] != folder or now[0] <= count:
        return None
    limit = memory_limit(folder)
    return "OOMKilled: the command ran out of memory" + (
        f" (memory limit {limit})" if limit else ""
    )


def enter(folders: list[str]) -> None:
    """Move this process into each of `folders` (for `subprocess.Popen(preexec_fn=...)`:
    the command is inside before it runs, and so is everything it starts)."""
    for folder in folders:
        fd = os.open(os.path.join(folder, PROCS), os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def members(folder: str) -> list[int]:
    """The pids in cgroup `folder` (none when it is gone)."""
    try:
        with open(os.path.join(folder, PROCS)) as fh:
            return [int(pid) for pid in fh.read().split()]
    except (OSError, ValueError):
        return []


def kill_all(folders: list[str]) -> None:
    """SIGKILL every process in `folders`, also those that left the command's process group
    (v2's `cgroup.kill` does it at once; else each pid, a few rounds for forks under way)."""
    for folder in folders:
        kill_file = os.path.join(folder, "cgroup.kill")
        if os.path.exists(kill_file):
            try:
                fd = os.open(kill_file, os.O_WRONLY)
                try:
                    os.write(fd, b"1")
                finally:
                    os.close(fd)
                continue
            except OSError:
                pass
        for _ in range(3):
            pids = members(folder)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def remove(folders: list[str], timeout: float = 10.0) -> list[str]:
    """Kill what is left in `folders`, then remove them once empty (a killed process
    leaves its cgroup only once it has exited). Returns the folders still there."""
    left = [f for f in folders if os.path.isdir(f)]
    stuck: list[str] = []
    deadline = time.monotonic() + timeout
    while left:
        kill_all(left)
        busy: list[str] = []
        for folder in left:
            try:
                os.rmdir(folder)
            except FileNotFoundError:
                pass
            except OSError as exc:
                (busy if exc.errno == errno.EBUSY else stuck).append(folder)
        left = busy
        if left and time.monotonic() < deadline:
            time.sleep(0.02)
        elif left:
            break
    return stuck + left
