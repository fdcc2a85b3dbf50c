"""Finding and removing containers qwex no longer needs, across every project on this daemon.

Every container qwex creates carries labels with its run id, the host path of
its run directory and its project's owner token (`qwex_core.ownership`): on a
daemon several users share, a container is considered only when the project it
names holds that token on this machine. It is garbage when its run is final, or
its record is gone. A run that is not final is first brought up to date through
its project's service (which records `lost` for a vanished agent and then
removes the container itself); a live run's container is never touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.garbage import Garbage, why_removable

from qwex_docker.spec import LABEL_OWNER, LABEL_PROJECT, LABEL_RUN_DIR, LABEL_RUN_ID

if TYPE_CHECKING:
    import docker


def collect(api: docker.APIClient, *, dry_run: bool = False) -> list[Garbage]:
    """Remove (unless `dry_run`) every qwex container whose run is final or unknown."""
    findings = []
    for summary in api.containers(all=True, filters={"label": LABEL_RUN_ID}):
        labels: dict[str, str] = summary.get("Labels") or {}
        why = why_removable(
            labels.get(LABEL_RUN_DIR),
            labels.get(LABEL_PROJECT),
            dry_run=dry_run,
            owner=labels.get(LABEL_OWNER),
        )
        if why is None:
            continue
        removed = False
        if not dry_run:
            removed = _remove(api, summary["Id"])
        run_id = labels.get(LABEL_RUN_ID, "?")
        findings.append(Garbage("docker", "container", summary["Id"][:12], run_id, why, removed))
    return findings


def _remove(api: docker.APIClient, container_id: str) -> bool:
    from docker.errors import APIError, NotFound

    try:
        api.remove_container(container_id, force=True, v=True)
    except NotFound:
        return True  # removed meanwhile (by the run's own cleanup)
    except APIError:
        return False
    return True
