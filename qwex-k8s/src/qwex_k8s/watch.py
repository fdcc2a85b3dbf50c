"""Watching one run's Job, pods and Kueue Workload while someone follows it.

Each kind is listed once, then watched from the list's resourceVersion (a 410 Gone
means the version expired: list again). The latest object of each kind is kept in
memory and every listener is called on every event, so a follower wakes as soon as the
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
        self.namespace = namespace
        self.job_name = job_name
        self.job: Any | None = None
        self.pods: dict[str, Any] = {}
        self.workload: dict[str, Any] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._api = api
        self._run_id = run_id
        self._job_uid = job_uid
        kinds = ["job", "pod"] + (["workload"] if queue and job_uid else [])
        self._synced = {kind: threading.Event() for kind in kinds}
        self._threads = [
            threading.Thread(target=self._loop, args=(k,), daemon=True, name=f"qwex-k8s-{k}")
            for k in kinds
        ]

    def _call(self, kind: str) -> tuple[Callable[..., Any], dict[str, Any]]:
        """The list call of `kind` and its arguments; the typed API classes are imported
        here, in the watch's own thread (they take a second to import)."""
        from kubernetes import client

        if kind == "job":
            return client.BatchV1Api(self._api).list_namespaced_job, {
                "namespace": self.namespace,
                "field_selector": f"metadata.name={self.job_name}",
            }
        if kind == "pod":
            return client.CoreV1Api(self._api).list_namespaced_pod, {
                "namespace": self.namespace,
                "label_selector": f"{LABEL_RUN_ID}={self._run_id}",
            }
        return client.CustomObjectsApi(self._api).list_namespaced_custom_object, {
            "group": KUEUE[0],
            "version": KUEUE[1],
            "namespace": self.namespace,
            "plural": "workloads",
            "label_selector": workload_selector(str(self._job_uid)),
        }

    @property
    def api(self) -> client.ApiClient:
        """The client the watch uses (the cluster it watches)."""
        return self._api

    def listen(self, listener: Callable[[], None]) -> None:
        """Call `listener` (quickly, from a watch thread) on every change from now on."""
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def start(self) -> RunWatch:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._changed()

    @property
    def workload_kind(self) -> bool:
        """Whether the run's Kueue Workload is watched too."""
        return "workload" in self._synced

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

    def _loop(self, kind: str) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        make_watch: Any = watch.Watch  # untyped in the client

        list_call, kwargs = self._call(kind)
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind, list_call, kwargs)
                    self._synced[kind].set()
                    self._changed()
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
                    self._changed()
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
