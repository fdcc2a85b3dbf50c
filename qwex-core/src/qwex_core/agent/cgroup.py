"""Telling an OOM kill from any other SIGKILL: the memory cgroup's `oom_kill` counter.

The agent shares its memory cgroup with the command (a container's, or the
user's session on a laptop). If the command died of SIGKILL and the counter
went up meanwhile, the kernel's out-of-memory killer sent it. Works with
cgroup v2 (`memory.events`) and v1 (`memory.oom_control`); elsewhere the
counter is simply unknown.
"""

from __future__ import annotations

import os


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


def oom_kills() -> tuple[int, str] | None:
    """(oom_kill count, cgroup folder) for this process, or None when it cannot be read."""
    for folder, events, _ in _memory_dirs():
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


def oom_reason(before: tuple[int, str] | None) -> str | None:
    """The `OOMKilled` reason when the counter read at start (`before`) has gone up since."""
    if before is None:
        return None
    count, folder = before
    now = oom_kills()
    if now is None or now[1] != folder or now[0] <= count:
        return None
    limit = memory_limit(folder)
    return "OOMKilled: the command ran out of memory" + (
        f" (memory limit {limit})" if limit else ""
    )
