"""The finalizer that keeps a run's pod until qwex has recorded the run's end.

The agent's final record reaches the host as the pod's termination message. A Job's
TTL (or anyone's delete) removes the pod, and with it that message, whether or not a
qwex process has looked: an unwatched `qwex run -d` would then show `lost`. So every
pod carries `qwex.dev/record`: deleted, it stays (terminated, its status kept) until
the qwex process that records the run's end removes the finalizer, as `qwex gc` does
for runs that are over or forgotten.
"""

from __future__ import annotations

from typing import Any

FINALIZER = "qwex.dev/record"


def release(core: Any, pod: Any, *, timeout: float | None = None) -> bool:
    """Remove qwex's finalizer from `pod` (a `V1Pod`), keeping any other; True when it is
    not there any more. A JSON patch tests the position first: a concurrent change of
    the list makes it fail instead of removing another finalizer."""
    from kubernetes.client.exceptions import ApiException

    finalizers = list(pod.metadata.finalizers or ())
    if FINALIZER not in finalizers:
        return True
    at = finalizers.index(FINALIZER)
    patch = [
        {"op": "test", "path": f"/metadata/finalizers/{at}", "value": FINALIZER},
        {"op": "remove", "path": f"/metadata/finalizers/{at}"},
    ]
    try:
        core.patch_namespaced_pod(
            pod.metadata.name, pod.metadata.namespace, patch, _request_timeout=timeout
        )
    except ApiException as exc:
        return bool(exc.status == 404)
    return True


def release_all(core: Any, namespace: str, run_id: str, *, timeout: float | None = None) -> None:
    """Release every pod of the run (each attempt's), re-reading on a lost race."""
    from qwex_k8s.manifests import LABEL_RUN_ID

    for _ in range(3):
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"{LABEL_RUN_ID}={run_id}", _request_timeout=timeout
        ).items
        if all(release(core, pod, timeout=timeout) for pod in pods):
            return
