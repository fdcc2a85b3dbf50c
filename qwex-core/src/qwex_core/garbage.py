"""What `qwex gc` reports: one thing a backend left behind (a container, a Job, a ConfigMap).

Each backend finds its own leftovers through the `qwex_collect_garbage` hook; core only
gathers the findings and shows them, so `qwex gc` covers every installed backend at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qwex_core.agent.record import FINAL_STATUSES, read_record
from qwex_core.errors import QwexError


@dataclass(frozen=True)
class Garbage:
    """A leftover of a run that is final or unknown, and whether it was removed."""

    backend: str
    kind: str
    """What it is, in the backend's words: `container`, `job`, `configmap`..."""
    name: str
    run: str
    """The run id it belonged to, `-` when it belongs to none."""
    why: str
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def why_removable(run_dir: str | None, project: str | None, *, dry_run: bool) -> str | None:
    """Why a leftover whose labels name `run_dir` and `project` may go (its run is final, or
    its record is gone), or None while its run still needs it. A run not final is brought up
    to date first through its own project's service (a vanished agent is then `lost`),
    unless `dry_run`."""
    record = read_record(Path(run_dir)) if run_dir else None
    if record is None:
        return f"no run record at {run_dir}" if run_dir else "it names no run folder"
    if record.get("status") in FINAL_STATUSES:
        return f"its run is {record['status']}"
    if dry_run or not project:
        return None
    from qwex_core.service import open_service

    try:
        status = open_service(Path(project)).get(str(record.get("id"))).status.value
    except QwexError:
        return None
    return f"its run is {status}" if status in FINAL_STATUSES else None
