"""Finding the Jobs and ConfigMaps qwex no longer needs in a namespace.

Every Job qwex creates carries `app.kubernetes.io/managed-by: qwex`, its run id, and
annotations naming the host and run folder of its record. A Job is garbage when its
run is final (its logs and end are in the record) or its record is gone; a run not
final is first brought up to date through its project's service (a vanished Job is
then recorded `lost`). A snapshot ConfigMap is garbage once no Job owns it, a run's
Secret (its secret env) once it has no owner and its run's Job is gone.
Jobs made on another host are left alone: their records are not here.
"""

from __future__ import annotations

import socket
from typing import Any

from qwex_core.garbage import Garbage, why_removable

from qwex_k8s.manifests import (
    ANNOTATION_HOST,
    ANNOTATION_PROJECT,
    ANNOTATION_RUN_DIR,
    LABEL_RUN_ID,
    LABEL_SNAPSHOT,
    MANAGED_BY,
    job_name,
)


def collect(api: Any, namespace: str, *, dry_run: bool = False) -> list[Garbage]:
    """Delete (unless `dry_run`) qwex's Jobs whose run is final or unknown, snapshot
    ConfigMaps no Job owns, and run Secrets left without their Job."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    core = client.CoreV1Api(api)
    findings = []
    here = socket.gethostname()
    jobs: list[Any] = batch.list_namespaced_job(
        namespace, label_selector=f"{MANAGED_BY}=qwex"
    ).items
    maps: list[Any] = core.list_namespaced_config_map(
        namespace, label_selector=LABEL_SNAPSHOT
    ).items
    for job in jobs:
        annotations = job.metadata.annotations or {}
        if annotations.get(ANNOTATION_HOST, here) != here:
            continue
        run_id = (job.metadata.labels or {}).get(LABEL_RUN_ID, "?")
        why = why_removable(
            annotations.get(ANNOTATION_RUN_DIR),
            annotations.get(ANNOTATION_PROJECT),
            dry_run=dry_run,
        )
        if why is None:
            continue
        removed = not dry_run and _delete(
            batch.delete_namespaced_job,
            job.metadata.name,
            namespace,
            propagation_policy="Background",
        )
        findings.append(Garbage("k8s", "job", job.metadata.name, run_id, why, removed))
    for cm in maps:
        if cm.metadata.owner_references:
            continue
        removed = not dry_run and _delete(
            core.delete_namespaced_config_map, cm.metadata.name, namespace
        )
        findings.append(
            Garbage("k8s", "configmap", cm.metadata.name, "-", "no Job uses it", removed)
        )
    names = {job.metadata.name for job in jobs}
    secrets: list[Any] = core.list_namespaced_secret(
        namespace, label_selector=f"{MANAGED_BY}=qwex,{LABEL_RUN_ID}"
    ).items
    for secret in secrets:
        run_id = (secret.metadata.labels or {}).get(LABEL_RUN_ID, "?")
        if secret.metadata.owner_references or job_name(run_id) in names:
            continue
        removed = not dry_run and _delete(
            core.delete_namespaced_secret, secret.metadata.name, namespace
        )
        findings.append(
            Garbage("k8s", "secret", secret.metadata.name, run_id, "its Job is gone", removed)
        )
    return findings


def _delete(call: Any, *args: Any, **kwargs: Any) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        call(*args, **kwargs)
    except ApiException as exc:
        return bool(exc.status == 404)
    return True
