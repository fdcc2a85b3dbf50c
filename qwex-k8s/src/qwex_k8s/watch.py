"""Watching one run's Job, pods and Kueue Workload while someone follows it.

Each kind is listed once, then watched from the list's resourceVersion (a 410 Gone
means the version expired: list again). The latest object of each kind is kept in
memory and `changed` is set on every event, so a follower wakes as soon as the
cluster changes (the Job completes) instead of polling the API server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qwex_k8s.manifests import LABEL_RUN_ID

if TYPE_CHECKING:
    from kubernetes import client

KUEUE = ("kueue.x-k8s.io", "v1beta2")
WATCH_SECONDS = 240
"""The server ends each watch after this long; it is resumed from the last version seen."""


def workload_selector(job_uid: str) -> str:
    return f"kueue.x-k8s.io/job-uid={job_uid}"


class RunWatch:
    """The Job, pods and Workload of one run, kept current by watches in daemon threads."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        job_name: str,
        run_id: str,
        job_uid: str | None,
        *,
        queue: bool,
    ) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.job_name = job_name
        self.job: Any | None = None
        self.pods: dict[str, Any] = {}
        self.workload: dict[str, Any] | None = None
        self.changed = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        batch = client.BatchV1Api(api)
        core = client.CoreV1Api(api)
        self._kinds: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            (
                "job",
                batch.list_namespaced_job,
                {"namespace": namespace, "field_selector": f"metadata.name={job_name}"},
            ),
            (
                "pod",
                core.list_namespaced_pod,
                {"namespace": namespace, "label_selector": f"{LABEL_RUN_ID}={run_id}"},
            ),
        ]
        if queue and job_uid:
            custom = client.CustomObjectsApi(api)
            self._kinds.append(
                (
                    "workload",
                    custom.list_namespaced_custom_object,
                    {
                        "group": KUEUE[0],
                        "version": KUEUE[1],
                        "namespace": namespace,
                        "plural": "workloads",
                        "label_selector": workload_selector(job_uid),
                    },
                )
            )
        self._synced = {kind: threading.Event() for kind, _, _ in self._kinds}
        self._threads = [
            threading.Thread(target=self._loop, args=k, daemon=True, name=f"qwex-k8s-{k[0]}")
            for k in self._kinds
        ]

    def start(self) -> RunWatch:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def synced(self, timeout: float = 0.0) -> bool:
        """Whether every kind has been listed once (waiting up to `timeout` s)."""
        deadline = time.monotonic() + timeout
        for event in self._synced.values():
            if not event.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def snapshot(self) -> tuple[Any | None, list[Any], dict[str, Any] | None]:
        with self._lock:
            return self.job, list(self.pods.values()), self.workload

    # -- the watch loops ---------------------------------------------------------

    def _loop(self, kind: str, list_call: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        make_watch: Any = watch.Watch  # untyped in the client

        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind, list_call, kwargs)
                    self._synced[kind].set()
                    self.changed.set()
                stream: Any = make_watch()
                for event in stream.stream(
                    list_call,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                    **kwargs,
                ):
                    if self._stop.is_set():
                        stream.stop()
                        return
                    if event["type"] == "ERROR":
                        code = (event.get("raw_object") or {}).get("code")
                        if code == 410:
                            version = None  # expired: list again
                            break
                        continue
                    if event["type"] != "BOOKMARK":
                        self._apply(kind, event["type"], event["object"])
                    version = stream.resource_version or version
                    self.changed.set()
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                    continue
                self._stop.wait(1.0)
            except Exception:  # the connection dropped: resume after a moment
                self._stop.wait(1.0)

    def _list(self, kind: str, list_call: Callable[..., Any], kwargs: dict[str, Any]) -> str:
        listing = list_call(**kwargs)
        if kind == "workload":
            items = listing.get("items") or []
            with self._lock:
                self.workload = items[0] if items else None
            return str(listing["metadata"]["resourceVersion"])
        with self._lock:
            if kind == "job":
                self.job = listing.items[0] if listing.items else None
            else:
                self.pods = {p.metadata.name: p for p in listing.items}
        return str(listing.metadata.resource_version)

    def _apply(self, kind: str, event: str, obj: Any) -> None:
        with self._lock:
            if kind == "workload":
                self.workload = None if event == "DELETED" else obj
            elif kind == "job":
                self.job = None if event == "DELETED" else obj
            elif event == "DELETED":
                self.pods.pop(obj.metadata.name, None)
            else:
                self.pods[obj.metadata.name] = obj
