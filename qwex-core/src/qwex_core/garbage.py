"""Deciding what `qwex gc` may remove: `why_removable`, and the `Garbage` it reports.

Each backend finds its own leftovers through the `qwex_collect_garbage` hook; core only
gathers the findings and shows them, so `qwex gc` covers every installed backend at once.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from qwex_core.agent.record import FINAL_STATUSES, read_record
from qwex_core.errors import QwexError
from qwex_core.leftovers import Garbage
from qwex_core.ownership import is_ours

__all__ = ["Garbage", "why_removable"]


_UNPROVEN = object()


def why_removable(
    run_dir: str | None, project: str | None, *, dry_run: bool, owner: Any = _UNPROVEN
) -> str | None:
    """Why a leftover whose labels name `run_dir`, `project` and `owner` (the token of
    `qwex_core.ownership`) may go (its run is final, or its record is gone), or None while
    its run still needs it or it is not provably this machine's. A run not final is brought
    up to date first through its own project's service (a vanished agent is then `lost`),
    unless `dry_run`.

    Called without `owner` (as backends written for qwex-core 0.1 do), a leftover is judged by its run
    folder alone, with a `DeprecationWarning`: a folder missing here does not prove that a
    leftover is ours, so pass `owner` (None when the object carries none)."""
    if owner is _UNPROVEN:
        warnings.warn(
            "why_removable() without owner= is deprecated and will require it in a later "
            "release: label what the backend creates with qwex_core.ownership.owner_token() "
            "and pass it back, so that a teammate's leftover is never taken for garbage",
            DeprecationWarning,
            stacklevel=2,
        )
    elif not is_ours(project, owner):
        return None
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
