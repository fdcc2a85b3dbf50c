"""Finding and removing containers qwex no longer needs, across every project on this daemon.

Every container qwex creates carries labels with its run id and the host path
of its run directory. A container is garbage when its run is final, or its
record is gone. A run that is not final is first brought up to date through
its project's service (which records `lost` for a vanished agent and then
removes the container itself); a live run's container is never touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qwex_core.agent.record import FINAL_STATUSES, read_record
from qwex_core.errors import QwexError
from qwex_core.garbage import Garbage

from qwex_docker.spec import LABEL_PROJECT, LABEL_RUN_DIR, LABEL_RUN_ID

if TYPE_CHECKING:
    import docker


def collect(api: docker.APIClient, *, dry_run: bool = False) -> list[Garbage]:
    """Remove (unless `dry_run`) every qwex container whose run is final or unknown."""
    findings = []
    for summary in api.containers(all=True, filters={"label": LABEL_RUN_ID}):
        labels: dict[str, str] = summary.get("Labels") or {}
        why = _why_garbage(labels, dry_run=dry_run)
        if why is None:
            continue
        removed = False
        if not dry_run:
            removed = _remove(api, summary["Id"])
        run_id = labels.get(LABEL_RUN_ID, "?")
        findings.append(Garbage("docker", "container", summary["Id"][:12], run_id, why, removed))
    return findings


def _why_garbage(labels: dict[str, str], *, dry_run: bool) -> str | None:
    """Why a container may go, or None when its run still needs it."""
    run_dir = labels.get(LABEL_RUN_DIR)
    record = read_record(Path(run_dir)) if run_dir else None
    if record is None:
        return f"no run record at {run_dir}" if run_dir else "no run directory label"
    if record.get("status") in FINAL_STATUSES:
        return f"its run is {record['status']}"
    if dry_run:
        return None
    status = _refresh(labels, str(record.get("id")))
    return f"its run is {status}" if status in FINAL_STATUSES else None


def _refresh(labels: dict[str, str], run_id: str) -> str | None:
    """Bring a run up to date through its own project's service; its status afterwards."""
    from qwex_core.service import open_service

    project = labels.get(LABEL_PROJECT)
    if not project:
        return None
    try:
        service = open_service(Path(project))
        return service.get(run_id).status.value
    except QwexError:
        return None


def _remove(api: docker.APIClient, container_id: str) -> bool:
    from docker.errors import APIError, NotFound

    try:
        api.remove_container(container_id, force=True, v=True)
    except NotFound:
        return True  # removed meanwhile (by the run's own cleanup)
    except APIError:
        return False
    return True
