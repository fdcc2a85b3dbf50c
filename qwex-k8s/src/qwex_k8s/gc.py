"""Finding the Jobs, pods and ConfigMaps qwex no longer needs in a namespace.

A namespace is shared: anything in it may be a teammate's until proven ours. Every
Job qwex creates (and its pod template) carries `app.kubernetes.io/managed-by: qwex`,
its run id, and annotations naming the project, the run folder and the project's
owner token (`qwex_core.ownership`: the project's store id on this machine). Only a
Job or pod whose owner token the named project holds here is considered; the host
name proves nothing. Of those, what is provably over goes: never anything with a pod
still pending or running, and only when its run is final or its record is gone (a
run not final is first brought up to date through its project's service). A pod
left without its Job (`kubectl delete job --cascade=orphan`) is found the same way,
a snapshot ConfigMap once no Job owns it, and a run's Secret (its secret env) of this
machine once it has no owner and its run's Job is gone. Removing a Job or pod also releases
qwex's finalizer on its pods (`qwex_k8s.finalizer`): they go at once.
"""

from __future__ import annotations

from typing import Any

from qwex_core.garbage import Garbage, why_removable
from qwex_core.ownership import is_ours

from qwex_k8s.finalizer import release
from qwex_k8s.manifests import (
    ANNOTATION_OWNER,
    ANNOTATION_PROJECT,
    ANNOTATION_RUN_DIR,
    LABEL_RUN_ID,
    LABEL_SNAPSHOT,
    MANAGED_BY,
    job_name,
)
from qwex_k8s.status import still_running


def collect(api: Any, namespace: str, *, dry_run: bool = False) -> list[Garbage]:
    """Delete (unless `dry_run`) this machine's qwex Jobs and orphaned pods whose run is
    over, snapshot ConfigMaps no Job owns, and run Secrets left without their Job."""
    from kubernetes import client

    batch = client.BatchV1Api(api)
    core = client.CoreV1Api(api)
    selector = f"{MANAGED_BY}=qwex"
    jobs: list[Any] = batch.list_namespaced_job(namespace, label_selector=selector).items
    pods: list[Any] = core.list_namespaced_pod(namespace, label_selector=selector).items
    maps: list[Any] = core.list_namespaced_config_map(
        namespace, label_selector=LABEL_SNAPSHOT
    ).items
    findings = []
    job_uids = {job.metadata.uid for job in jobs}
    for job in jobs:
        mine = [p for p in pods if _owner_uid(p) == job.metadata.uid]
        why = _why(job, dry_run=dry_run, live=any(still_running(p) for p in mine))
        if why is None:
            continue
        removed = not dry_run and _delete(
            batch.delete_namespaced_job,
            job.metadata.name,
            namespace,
            propagation_policy="Background",
        )
        if removed:
            removed = all(release(core, p) for p in mine)  # the pods go with the Job
        findings.append(Garbage("k8s", "job", job.metadata.name, _run_id(job), why, removed))
    for pod in pods:
        if _owner_uid(pod) in job_uids:
            continue  # goes with its Job
        why = _why(pod, dry_run=dry_run, live=still_running(pod))
        if why is None:
            continue
        removed = not dry_run and _delete(core.delete_namespaced_pod, pod.metadata.name, namespace)
        removed = removed and release(core, pod)
        why = f"{why}; its Job is gone"
        findings.append(Garbage("k8s", "pod", pod.metadata.name, _run_id(pod), why, removed))
    for cm in maps:
        if cm.metadata.owner_references:
            continue
        gone = _remove_as_listed(core.delete_namespaced_config_map, cm, dry_run=dry_run)
        if gone is None:
            continue  # a Job took it up since it was listed (a teammate's qwex, say)
        findings.append(Garbage("k8s", "configmap", cm.metadata.name, "-", "no Job uses it", gone))
    names = {job.metadata.name for job in jobs}
    secrets = _run_secrets(core, namespace)
    for secret in secrets:
        run_id = (secret.metadata.labels or {}).get(LABEL_RUN_ID, "?")
        if secret.metadata.owner_references or job_name(run_id) in names:
            continue
        annotations = secret.metadata.annotations or {}
        if not is_ours(annotations.get(ANNOTATION_PROJECT), annotations.get(ANNOTATION_OWNER)):
            continue  # a teammate's, between its creation and its Job's
        gone = _remove_as_listed(core.delete_namespaced_secret, secret, dry_run=dry_run)
        if gone is None:
            continue  # its Job took it up since it was listed
        findings.append(
            Garbage("k8s", "secret", secret.metadata.name, run_id, "its Job is gone", gone)
        )
    return findings


def _run_secrets(core: Any, namespace: str) -> list[Any]:
    """The runs' Secrets of the namespace; none where listing Secrets is not allowed (the
    Helm chart's Role by default: a list reads every Secret's data). Those are only the
    Secrets of runs whose Job was never created: the others are owned by their Job and go
    with it, so the rest of gc goes on."""
    from kubernetes.client import ApiException

    try:
        return list(
            core.list_namespaced_secret(
                namespace, label_selector=f"{MANAGED_BY}=qwex,{LABEL_RUN_ID}"
            ).items
        )
    except ApiException as exc:
        if exc.status == 403:
            return []
        raise


def namespaces(api: Any, configured: str, extra: list[str]) -> list[str]:
    """The namespaces to look in: the configured one, then `extra` (`*`: every namespace)."""
    from kubernetes import client

    wanted = list(extra)
    if "*" in wanted:
        listed: list[Any] = client.CoreV1Api(api).list_namespace().items
        wanted = [str(ns.metadata.name) for ns in listed]
    return list(dict.fromkeys([configured, *wanted]))


def _why(obj: Any, *, dry_run: bool, live: bool) -> str | None:
    """Why a Job or pod of qwex's may go, or None: not provably this machine's, a pod of it
    still pending or running, or its run not over."""
    annotations = obj.metadata.annotations or {}
    if live:
        return None
    return why_removable(
        annotations.get(ANNOTATION_RUN_DIR),
        annotations.get(ANNOTATION_PROJECT),
        dry_run=dry_run,
        owner=annotations.get(ANNOTATION_OWNER),
    )


def _owner_uid(pod: Any) -> str | None:
    for ref in pod.metadata.owner_references or ():
        if ref.kind == "Job":
            return str(ref.uid)
    return None


def _run_id(obj: Any) -> str:
    return str((obj.metadata.labels or {}).get(LABEL_RUN_ID, "?"))


def _remove_as_listed(call: Any, obj: Any, *, dry_run: bool) -> bool | None:
    """Whether `obj` was deleted (never in a dry run), deleting it only as it was listed:
    the API server checks its uid and resource version, since an object that looked unused
    when listed may be another qwex's by the time of the delete. None when the server
    refused for that (409): it is no longer garbage."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    if dry_run:
        return False
    meta = obj.metadata
    unchanged = client.V1Preconditions(resource_version=meta.resource_version, uid=meta.uid)
    try:
        call(meta.name, meta.namespace, body=client.V1DeleteOptions(preconditions=unchanged))
    except ApiException as exc:
        if exc.status == 409:
            return None
        return bool(exc.status == 404)
    return True


def _delete(call: Any, *args: Any, **kwargs: Any) -> bool:
    from kubernetes.client.exceptions import ApiException

    try:
        call(*args, **kwargs)
    except ApiException as exc:
        return bool(exc.status == 404)
    return True
