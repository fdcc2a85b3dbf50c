"""`KubernetesRunner`: one `batch/v1` Job per run, queued by Kueue when a queue is named.

`start` makes the project's snapshot ConfigMap (content-addressed, immutable, owned
by the Jobs that use it), records the Job's name, namespace and context in the run
record, then creates the Job. The agent runs in the pod and keeps its record there
(its end reaches the cluster as the container's termination message), so this is an
observed backend (`qwex_core.observed`): `observe` says what the Job, its pods and its
Kueue Workload show (`qwex_k8s.status`), `read_log` and `follow_log` give the pods' log
bytes with the kubelet's times (`qwex_k8s.logs`), and core writes the record and the
run's log files. Jobs, pods and Workloads are watched instead of polled while someone
follows the run (`qwex_k8s.watch`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import BackendError, SpecError
from qwex_core.lifecycle import Seen
from qwex_core.observed import LogBytes, Observation, ObservedRunner
from qwex_core.ownership import owner_token
from qwex_core.workers import prefixed, worker_log

from qwex_k8s import gang, logs, manifests, status
from qwex_k8s.client import Connection, Refused, api_message, connect, is_unreachable, rest
from qwex_k8s.finalizer import release, release_all
from qwex_k8s.lean import METADATA_ONLY, typed
from qwex_k8s.settings import SNAPSHOT, K8sSettings
from qwex_k8s.visibility import QueuePositions
from qwex_k8s.watch import KUEUE, RunWatch, workload_selector

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.snapshot import Snapshot
    from qwex_core.store import RunStore

WATCH_AFTER = 5.0
"""A run looked at twice within this many seconds is being polled: watch it instead."""
START_LOCK = "k8s-start.lock"
"""Held by the qwex process starting a run until the cluster has its Job (an flock: it goes
with the process)."""
START_GRACE = 10.0
"""Seconds a run may have no Job and no starter before it is known never to get one."""
NEVER_CREATED = Observation(
    Seen.EXITED,
    "its Job",
    status="failed",
    reason="the qwex process starting the run stopped before it created the Job (nothing ran); "
    "start it again",
)
LOG_GONE = (
    "qwex could not copy its pod's log: the Job's TTL had passed, or the pod was deleted, "
    "before a qwex process looked"
)
REREAD_AFTER = 1.0
"""Seconds within which a log read from where the last one ended is answered "nothing new"
without asking again (core asks once more after every answer; a running pod's log is read
whole each time)."""
LISTING_FRESH = 5.0
"""Seconds the Jobs, pods and Workloads of a `prefetch` stand for the looks that follow."""
FOLLOW_PAUSE = 1.0
"""Seconds before following a pod's log again after its stream dropped while it runs."""

State = tuple[Any | None, list[Any], dict[str, Any] | None]
"""A run's Job (None: not found), its pods and its Kueue Workload."""


@dataclass(frozen=True)
class Listing:
    """What one `prefetch` found in a namespace."""

    at: float
    namespace: str
    jobs: dict[str, Any]
    pods: dict[str, list[Any]]
    """Pods by run id."""
    workloads: dict[str, dict[str, Any]]
    """Kueue Workloads by the uid of their Job."""


class KubernetesRunner(ObservedRunner):
    """Runs each job as a Kubernetes Job of `spec.container.image`."""

    uses_container = True
    accepts_secret_env = True
    runs_workers = True
    """`--nodes`: an Indexed Job, a gang for Kueue; `--array`: an Indexed Job, `limit` at once."""
    """Secret env goes into a Secret owned by the Job; the pod reads it by `secretKeyRef`."""
    streams = ("stdout",)
    """The API server gives a container's log with stdout and stderr merged."""
    start_timeout = 3600.0
    """Seconds a run not waiting in Kueue's queue may take to start its command (a large
    image takes minutes to pull). A pod that cannot get its image or create its container
    fails at once, one that cannot be scheduled after `schedule_timeout`, a run that was
    queued waits as long as Kueue keeps it (`queued`)."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self.k8s = self.settings("k8s", K8sSettings)
        self._conn: Connection | None = None
        self._watches: dict[str, RunWatch] = {}
        self._watch_lock = threading.Lock()
        self._last_look: dict[str, float] = {}
        self._positions: QueuePositions | None = None
        self._listed: Listing | None = None
        self._pods: dict[str, list[Any]] = {}
        """The pods of each run as the last look saw them (released once its end is kept)."""
        self._stuck: set[str] = set()
        """Runs that ended while their Job could not start a pod: cleanup deletes the Job."""
        self._listed_look: set[str] = set()
        """Runs whose last look came from a `prefetch` listing (core copies their log at the
        end only: a listing costs no request per run)."""
        self._streaming: dict[str, str] = {}
        """The pod whose log this process's follower streams, per run."""
        self._bodies: dict[tuple[str, str], logs.PodLog] = {}
        """A finished pod's log, read by the look that saw the end, for the copy after it."""
        self._read: dict[str, tuple[str, int, float, bool]] = {}
        """Per run: the pod whose log was read last, the local offset its answer reached,
        when, and whether the pod's command had ended (its log complete)."""
        self._snapshot: tuple[int, Snapshot] | None = None

    @property
    def conn(self) -> Connection:
        """The cluster connection, opened on first use (the client import is not free)."""
        if self._conn is None:
            self._conn = connect(self.k8s)
        return self._conn

    def reconnect(self) -> None:
        """Drop the cluster connection and the watches: the next look connects again, with
        the settings as they are then (`self.k8s`)."""
        for run_id in list(self._watches):
            self._stop_watch(run_id)
        self._conn = None
        self._positions = None
        self._listed = None

    def _apis(self) -> tuple[Any, Any, Any]:
        from kubernetes import client

        api = self.conn.api
        return client.BatchV1Api(api), client.CoreV1Api(api), client.CustomObjectsApi(api)

    # -- starting ------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        manifests.check(spec, self.store.project_dir, self.k8s)
        if self.k8s.code == SNAPSHOT:
            self._snapshot = (id(spec), self._make_snapshot())
        if self.k8s.queue:
            self._check_queue(self.k8s.queue)
            if self.k8s.priority_class:
                self._check_priority(self.k8s.priority_class)
        elif self.k8s.priority_class:
            raise SpecError(
                f"priority_class {self.k8s.priority_class!r} is a Kueue WorkloadPriorityClass: "
                "it needs a queue; pass --queue NAME or set [tool.qwex.k8s] queue (or unset "
                "priority_class)"
            )

    def _make_snapshot(self) -> Snapshot:
        """The project's snapshot; `SnapshotTooLarge` names the biggest files when too big."""
        from qwex_core.snapshot import make_snapshot

        return make_snapshot(self.store.project_dir, limit=self.k8s.snapshot_limit)

    def _check_queue(self, queue: str) -> None:
        """Say clearly when the LocalQueue does not exist, listing the ones that do."""
        namespace = self.conn.namespace
        queues = f"/apis/{KUEUE[0]}/{KUEUE[1]}/namespaces/{namespace}/localqueues"
        try:
            rest(self.conn, "GET", f"{queues}/{queue}", timeout=self.k8s.request_timeout)
            return
        except Refused as exc:
            if exc.status != 404:
                raise BackendError(
                    f"cannot check the Kueue LocalQueue {queue!r} in namespace {namespace}: "
                    f"{api_message(exc)}"
                ) from None
        try:
            found = rest(self.conn, "GET", queues, timeout=self.k8s.request_timeout)
            names = ", ".join(sorted(q["metadata"]["name"] for q in found["items"])) or "none"
        except Refused as exc:
            names = f"cannot list them: {api_message(exc)}"
        raise SpecError(
            f"no Kueue LocalQueue {queue!r} in namespace {namespace} (LocalQueues there: "
            f"{names}); fix --queue or [tool.qwex.k8s] queue, or create it (docs/kubernetes.md)"
        )

    def _check_priority(self, name: str) -> None:
        """Kueue creates no Workload for an unknown priority class: the run would wait forever."""
        classes = f"/apis/{KUEUE[0]}/{KUEUE[1]}/workloadpriorityclasses"
        try:
            rest(self.conn, "GET", f"{classes}/{name}", timeout=self.k8s.request_timeout)
            return
        except Refused as exc:
            if exc.status != 404:
                return  # not allowed to look (a namespaced user): let Kueue judge
        found = rest(self.conn, "GET", classes, timeout=self.k8s.request_timeout)
        names = ", ".join(sorted(c["metadata"]["name"] for c in found["items"])) or "none"
        raise SpecError(
            f"no Kueue WorkloadPriorityClass {name!r} (there are: {names}); fix "
            "[tool.qwex.k8s] priority_class"
        )

    def start(self, run: Run) -> None:
        with _held(self.store.run_dir(run.id) / START_LOCK):
            snap = self._plan(run)
            self.store.save(run)  # before anything exists: every qwex process can find it again
            self._create(run, snap)

    def _plan(self, run: Run) -> Snapshot | None:
        """Fill `run.backend_data` with what finds the run again; the snapshot to send."""
        conn = self.conn
        snap = None
        if self.k8s.code == SNAPSHOT:
            snap = self._snapshot[1] if self._snapshot else None
            if snap is None:
                snap = self._make_snapshot()
            self._snapshot = None
        run.backend_data = {
            "job": manifests.job_name(run.id),
            "namespace": conn.namespace,
            "context": conn.context,
            "queue": self.k8s.queue,
            "retries": self.k8s.retries,
            "snapshot": manifests.snapshot_name(snap.sha256) if snap is not None else None,
            "secret": manifests.secret_name(run.id) if run.spec.secret_env else None,
        }
        return snap

    def _create(self, run: Run, snap: Snapshot | None) -> None:
        """Create the Secret, the Job, then make the Job an owner of the snapshot's
        ConfigMap, which is created only when that finds none: an unchanged project costs
        no upload of its snapshot (the pod's volume waits for a ConfigMap made after it).
        The Job's uid goes into this `run` (its watch needs it); the record gets it from
        the first look."""
        conn = self.conn
        name = manifests.job_name(run.id)
        snapshot = run.backend_data["snapshot"]
        body = manifests.job_manifest(run, self.k8s, self._facts(run, snapshot))
        secret = run.backend_data["secret"]
        try:
            if secret is not None:
                self._create_secret(run)
            job = rest(
                conn,
                "POST",
                f"/apis/batch/v1/namespaces/{conn.namespace}/jobs",
                body,
                timeout=self.k8s.request_timeout,
            )
        except Refused as exc:
            if secret is not None:
                self._delete_secret(secret, conn.namespace)
            raise BackendError(
                f"the cluster refused the Job {name} in namespace {conn.namespace}: "
                f"{api_message(exc)}"
            ) from None
        run.backend_data["uid"] = job["metadata"]["uid"]
        if snap is not None:
            try:
                self._snapshot_owned(snap, name, job["metadata"]["uid"])
            except BackendError:
                self._stuck.add(run.id)  # its pod would wait for the ConfigMap: cleanup deletes it
                raise
        if secret is not None:
            self._own(f"/api/v1/namespaces/{conn.namespace}/secrets/{secret}", name, job)
        if run.spec.nodes > 1:
            self._create_service(run, job)

    def _create_service(self, run: Run, job: dict[str, Any]) -> None:
        """The headless Service that names a `--nodes` run's pods (`MASTER_ADDR`), owned by
        its Job; the run fails to start (its Job deleted) when the cluster refuses it."""
        namespace = self.conn.namespace
        owner = manifests.owner_reference(job, job["metadata"]["uid"])
        body = manifests.service_manifest(run, namespace, owner)
        try:
            rest(
                self.conn,
                "POST",
                f"/api/v1/namespaces/{namespace}/services",
                body,
                timeout=self.k8s.request_timeout,
            )
        except Refused as exc:
            self._stuck.add(run.id)  # its workers could not find each other: cleanup deletes it
            raise BackendError(
                f"the cluster refused the headless Service of the Job {job['metadata']['name']} "
                f"(its workers' DNS names) in namespace {namespace}: {api_message(exc)}"
            ) from None

    def _create_secret(self, run: Run) -> None:
        """Create the run's Secret (its secret env; see `manifests.secret_manifest`)."""
        namespace = self.conn.namespace
        body = manifests.secret_manifest(run, namespace)
        body["metadata"]["annotations"] = {  # whose it is, for `qwex gc` (see `gc`)
            manifests.ANNOTATION_PROJECT: str(self.store.project_dir),
            manifests.ANNOTATION_OWNER: owner_token(self.store.project_dir) or "",
        }
        path = f"/api/v1/namespaces/{namespace}/secrets"
        rest(self.conn, "POST", path, body, timeout=self.k8s.request_timeout)

    def _own(self, path: str, name: str, job: dict[str, Any]) -> None:
        """Make the Job the owner of the object at `path`: the cluster deletes it with the Job."""
        reference = manifests.owner_reference(name, job["metadata"]["uid"])
        patch = {"metadata": {"ownerReferences": [reference]}}
        with contextlib.suppress(Refused, BackendError):  # cleanup deletes it too
            rest(
                self.conn,
                "PATCH",
                path,
                patch,
                content_type="application/strategic-merge-patch+json",
                accept=METADATA_ONLY,
                timeout=self.k8s.request_timeout,
            )

    def _delete_secret(self, secret: str, namespace: str) -> None:
        """Delete a run's Secret (best effort: it is owned by the Job, which takes it along)."""
        with contextlib.suppress(Refused, BackendError):
            rest(
                self.conn,
                "DELETE",
                f"/api/v1/namespaces/{namespace}/secrets/{secret}",
                timeout=self.k8s.request_timeout,
            )

    def _facts(self, run: Run, snapshot: str | None) -> manifests.Facts:
        return manifests.Facts(
            namespace=self.conn.namespace,
            project_dir=self.store.project_dir,
            run_dir=self.store.run_dir(run.id),
            host=socket.gethostname(),
            owner=owner_token(self.store.project_dir),
            snapshot=snapshot,
        )

    def describe(self, run: Run) -> str:
        """The Job (and the snapshot's ConfigMap, its bytes left out) as YAML, for
        `qwex run --dry-run`: what `start` would send, `kubectl apply`-able but for the
        ConfigMap's data."""
        import yaml

        docs: list[dict[str, Any]] = []
        snapshot = None
        if self.k8s.code == SNAPSHOT:
            snap = self._snapshot[1] if self._snapshot else self._make_snapshot()
            snapshot = manifests.snapshot_name(snap.sha256)
            config_map = manifests.snapshot_configmap(snap.sha256, b"", self.conn.namespace)
            config_map["binaryData"] = {
                manifests.SNAPSHOT_KEY: f"<the project's snapshot: {len(snap.data)} bytes>"
            }
            docs.append(config_map)
        docs.append(manifests.job_manifest(run, self.k8s, self._facts(run, snapshot)))
        if run.spec.nodes > 1:  # its owner (the Job's uid) is filled in when it is made
            owner = manifests.owner_reference(manifests.job_name(run.id), "<the Job's uid>")
            docs.append(manifests.service_manifest(run, self.conn.namespace, owner))
        return str(yaml.safe_dump_all(docs, sort_keys=False))

    def _snapshot_owned(self, snap: Snapshot, job: str, uid: str) -> None:
        """Add the Job to the owners of the snapshot's ConfigMap (it goes with the last Job
        using it), creating it, owned, when there is none, and asking for the answer's
        metadata only (`METADATA_ONLY`: not the project's code back with every submit); `BackendError` in the cluster's
        words when it cannot be made (the run then fails, and its Job is deleted)."""
        namespace = self.conn.namespace
        path = f"/api/v1/namespaces/{namespace}/configmaps"
        name = manifests.snapshot_name(snap.sha256)
        owner = manifests.owner_reference(job, uid)
        patch = {"metadata": {"ownerReferences": [owner]}}
        timeout = self.k8s.request_timeout
        merge = "application/strategic-merge-patch+json"
        try:
            for _ in range(2):  # made by another qwex between the two: own it then
                try:
                    rest(
                        self.conn,
                        "PATCH",
                        f"{path}/{name}",
                        patch,
                        content_type=merge,
                        accept=METADATA_ONLY,
                        timeout=timeout,
                    )
                    return
                except Refused as exc:
                    missing = exc.status == 404  # else not allowed to patch: it must exist
                body = manifests.snapshot_configmap(snap.sha256, snap.data, namespace)
                body["metadata"]["ownerReferences"] = [owner]
                try:
                    rest(self.conn, "POST", path, body, accept=METADATA_ONLY, timeout=timeout)
                    return
                except Refused as exc:
                    if exc.status != 409:
                        raise
                    if not missing:
                        return  # there, not owned by this Job: `qwex gc` removes it later
        except Refused as exc:
            raise BackendError(
                f"the cluster refused the project's snapshot ConfigMap {name} in namespace "
                f"{namespace}: {api_message(exc)}"
            ) from None

    # -- looking at the run ------------------------------------------------------

    def _watch(self, run: Run) -> RunWatch | None:
        data = run.backend_data
        if not data.get("job"):
            return None
        with self._watch_lock:  # a look and the log's follower at once: one watch
            return self._watch_locked(run, data)

    def _watch_locked(self, run: Run, data: dict[str, Any]) -> RunWatch | None:
        watch = self._watches.get(run.id)
        if watch is not None and data.get("queue") and data.get("uid") and not watch.workload_kind:
            watch.stop()  # made before the Job's uid was known: watch its Workload too
        if watch is None or watch.stopped:
            try:
                api = self.conn.api
            except BackendError:
                return None
            watch = RunWatch(
                api,
                str(data["namespace"]),
                str(data["job"]),
                run.id,
                data.get("uid"),
                queue=bool(data.get("queue")),
            ).start()
            self._watches[run.id] = watch
        return watch

    def _state(self, run: Run) -> State | None:
        """The run's Job, pods and Workload: from the watch when there is one, else read
        now. None when the API server cannot be reached."""
        if run.spec.workers > 1:  # several pods, copied on each look: no watch to follow
            listed = self._from_listing(run)
            if listed is not None:
                self._listed_look.add(run.id)
                return listed
            self._listed_look.discard(run.id)
            return self._read_state_lean(run)
        now = time.monotonic()
        watch = self._watches.get(run.id)
        listed = None if watch is not None else self._from_listing(run)
        if listed is not None:  # looked at with many others (a listing, `qwex wait` of several)
            self._listed_look.add(run.id)
            return listed
        polled = now - self._last_look.get(run.id, -1e9) < WATCH_AFTER
        self._last_look[run.id] = now
        if watch is not None or polled:
            watch = self._watch(run)  # (made again when it lacks the Workload's watch)
        self._listed_look.discard(run.id)
        if watch is not None and not watch.stopped and watch.synced(timeout=5.0):
            return watch.snapshot()
        return self._read_state(run)

    def prefetch(self) -> None:
        """One list each of qwex's Jobs, pods and Kueue Workloads in the namespace, for the
        looks of a listing: its requests do not grow with the number of live runs. Read as
        JSON (`qwex_k8s.lean.Typed`): neither the kubernetes client's import nor its models
        are needed to bring live runs up to date."""
        from urllib.parse import quote

        namespace = self.conn.namespace
        mine = f"{manifests.MANAGED_BY}=qwex"
        timeout = self.k8s.request_timeout

        def listed(path: str, selector: str | None = None) -> list[Any]:
            query = f"?labelSelector={quote(selector, safe='')}" if selector else ""
            items = rest(self.conn, "GET", path + query, timeout=timeout).get("items") or []
            return [typed(item) for item in items]

        try:
            jobs = listed(f"/apis/batch/v1/namespaces/{namespace}/jobs", mine)
            pods = listed(
                f"/api/v1/namespaces/{namespace}/pods", f"{mine},{manifests.LABEL_RUN_ID}"
            )
            try:
                workloads = listed(f"/apis/{KUEUE[0]}/{KUEUE[1]}/namespaces/{namespace}/workloads")
            except Refused:
                workloads = []  # no Kueue here: queued runs are read one by one
        except (Refused, BackendError):
            return  # each run is then read on its own
        by_run: dict[str, list[Any]] = {}
        for pod in pods:
            by_run.setdefault(pod.metadata.labels[manifests.LABEL_RUN_ID], []).append(pod)
        self._listed = Listing(
            time.monotonic(),
            namespace,
            {job.metadata.name: job for job in jobs},
            by_run,
            {(w.metadata.labels or {}).get("kueue.x-k8s.io/job-uid", ""): w for w in workloads},
        )

    def _from_listing(self, run: Run) -> State | None:
        """The run's Job, pods and Workload from the last `prefetch`, while it is fresh."""
        listed, data = self._listed, run.backend_data
        if (
            listed is None
            or time.monotonic() - listed.at > LISTING_FRESH
            or listed.namespace != data.get("namespace")
        ):
            return None
        job = listed.jobs.get(str(data["job"]))
        workload = listed.workloads.get(job.metadata.uid) if job is not None else None
        return job, listed.pods.get(run.id, []), workload

    def _read_state_lean(self, run: Run) -> State | None:
        """The run's Job, pods and Workload read as JSON (`qwex_k8s.lean.Typed`): a run of
        workers is looked at often while its pods start, and the kubernetes client's import
        (half a second of CPU) would compete with them on a small node."""
        from urllib.parse import quote

        data = run.backend_data
        namespace, name = str(data["namespace"]), str(data["job"])
        timeout = self.k8s.request_timeout
        try:
            try:
                job = typed(
                    rest(
                        self.conn,
                        "GET",
                        f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}",
                        timeout=timeout,
                    )
                )
            except Refused as exc:
                if exc.status != 404:
                    return None
                job = None  # its pods may outlive it (deleted with --cascade=orphan)
            selector = quote(f"{manifests.LABEL_RUN_ID}={run.id}", safe="")
            found = rest(
                self.conn,
                "GET",
                f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}",
                timeout=timeout,
            )
            pods = [typed(pod) for pod in found.get("items") or []]
            workload = None
            if job is not None and data.get("queue") and job.spec.suspend:
                which = quote(workload_selector(job.metadata.uid), safe="")
                listed = rest(
                    self.conn,
                    "GET",
                    f"/apis/{KUEUE[0]}/{KUEUE[1]}/namespaces/{namespace}/workloads"
                    f"?labelSelector={which}",
                    timeout=timeout,
                )
                items = listed.get("items") or []
                workload = typed(items[0]) if items else None
            return job, pods, workload
        except (Refused, BackendError):
            return None  # cannot tell now: the record stands

    def _read_state(self, run: Run) -> State | None:
        from kubernetes.client.exceptions import ApiException

        data = run.backend_data
        namespace, name = str(data["namespace"]), str(data["job"])
        try:
            batch, core, custom = self._apis()
            timeout = self.k8s.request_timeout
            try:
                job = batch.read_namespaced_job(name, namespace, _request_timeout=timeout)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                job = None  # its pods may outlive it (deleted with --cascade=orphan)
            pods = core.list_namespaced_pod(
                namespace,
                label_selector=f"{manifests.LABEL_RUN_ID}={run.id}",
                _request_timeout=timeout,
            ).items
            workload = None
            if job is not None and data.get("queue") and job.spec.suspend:
                found = custom.list_namespaced_custom_object(
                    *KUEUE,
                    namespace,
                    "workloads",
                    label_selector=workload_selector(job.metadata.uid),
                    _request_timeout=timeout,
                )
                workload = found["items"][0] if found["items"] else None
            return job, list(pods), workload
        except (ApiException, BackendError):
            return None  # cannot tell now: the record stands
        except Exception as exc:
            if is_unreachable(exc):
                return None
            raise

    def observe(self, run: Run) -> Observation | None:
        data = run.backend_data
        if not data.get("job"):
            return (
                NEVER_CREATED if self._starter_died(run) else Observation(Seen.NOTHING, "its Job")
            )
        state = self._state(run)
        if state is None:
            return None
        job, pods, workload = state
        if job is None and not data.get("uid") and self._starter_died(run):
            return NEVER_CREATED
        if run.spec.workers > 1:
            return self._observe_workers(run, job, pods, workload)
        view = status.observe(
            job,
            pods,
            workload,
            known=bool(data.get("uid")) or job is not None,
            queue=data.get("queue"),
            retries=int(data.get("retries") or 0),
        )
        self._pods[run.id] = pods
        seen = self._meaning(run, view, workload)
        if seen.seen is Seen.EXITED and (view.stuck or seen is not view.observation):
            self._stuck.add(run.id)  # its Job would go on trying: cleanup deletes it
        starts = self._starts(run)
        if seen.seen is Seen.EXITED and view.pod and view.pod not in starts:
            try:
                if not self._final_log(run, view.pod):
                    seen = replace(seen, reason=f"{seen.reason} ({LOG_GONE})")
            except BackendError:
                return None  # cannot tell now
        notes: dict[str, Any] = {}
        if job is not None and not data.get("uid"):
            notes["uid"] = job.metadata.uid  # its Job exists: from now on, not finding it is news
        if pods:
            earlier = list(data.get("attempts") or [])
            notes["attempts"] = status.attempts(pods, earlier, starts)
        return replace(seen, data=notes or None, listed=run.id in self._listed_look)

    def _observe_workers(
        self, run: Run, job: Any, pods: list[Any], workload: dict[str, Any] | None
    ) -> Observation:
        """A `--nodes` or `--array` run: its Job and each worker's newest pod
        (`qwex_k8s.gang`); each worker's state goes into the record (`workers`)."""
        data, spec = run.backend_data, run.spec
        view, rows = gang.observe(
            job,
            pods,
            workload,
            count=spec.workers,
            array_first=spec.array.first if spec.array is not None else None,
            known=bool(data.get("uid")) or job is not None,
            queue=data.get("queue"),
        )
        self._pods[run.id] = pods
        seen = self._meaning(run, view, workload)
        if seen.seen is Seen.EXITED and (view.stuck or seen is not view.observation):
            self._stuck.add(run.id)
        notes: dict[str, Any] = {}
        if job is not None and not data.get("uid"):
            notes["uid"] = job.metadata.uid
        if rows:
            notes["workers"] = rows
        return replace(seen, data=notes or None, listed=run.id in self._listed_look)

    def _final_log(self, run: Run, pod: str) -> bool:
        """Whether the ended pod's log, of which nothing is copied yet, can be had whole
        (kept for the copy that follows the look)."""
        body = self._read_pod_log(run, pod)
        if body is None or body.cut:
            return False
        self._bodies[(run.id, pod)] = body
        return True

    def _meaning(self, run: Run, view: status.View, workload: dict[str, Any] | None) -> Observation:
        """What the cluster's view means for this run: its place in Kueue's queue, a pod
        unschedulable past `schedule_timeout` (failed), a run admitted by Kueue still
        waiting for its pod (queued), a Job between two attempts (alive)."""
        from qwex_core.models import RunStatus

        seen = view.observation
        if seen.queued is not None:
            return replace(seen, queued=self._with_position(run, seen.queued, workload))
        if seen.seen is not Seen.STARTING:
            return seen
        since = view.unschedulable_since
        if (
            since is not None
            and (datetime.now(UTC) - since).total_seconds() > self.k8s.schedule_timeout
        ):
            return replace(seen, seen=Seen.EXITED, status="failed", reason=view.waiting)
        if run.status is RunStatus.QUEUED:  # out of Kueue's queue, not running yet
            return replace(seen, queued=f"admitted by Kueue; {view.waiting}")
        if run.started_at is not None:  # an attempt ended; the Job lives on (a retry)
            return replace(seen, seen=Seen.ALIVE)
        return seen

    def _with_position(self, run: Run, reason: str, workload: dict[str, Any] | None) -> str:
        """The queued run's reason, with its place in the queue when Kueue tells it."""
        queue_name = run.backend_data.get("queue")
        name = ((workload or {}).get("metadata") or {}).get("name")
        if not queue_name or not name:
            return reason
        if self._positions is None:
            self._positions = QueuePositions(self.conn, self.k8s.request_timeout)
        where = self._positions.describe(str(run.backend_data["namespace"]), str(queue_name), name)
        return f"{reason} ({where})" if where else reason

    def _starter_died(self, run: Run) -> bool:
        """Whether the qwex process that started `run` stopped before the Job was created:
        the run is past `START_GRACE` and nothing holds its start lock."""
        if (datetime.now(UTC) - run.created_at).total_seconds() < START_GRACE:
            return False
        path = self.store.run_dir(run.id) / START_LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        except FileNotFoundError:
            return True  # the starter never got as far as taking it
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # still starting (a large snapshot, a slow API server)
        finally:
            os.close(fd)
        return True

    # -- the log -------------------------------------------------------------------

    def _starts(self, run: Run) -> dict[str, int]:
        """Where each pod's log begins in the run's log file: core's account of its
        sources, and that of an earlier qwex that copied logs itself (`k8s-logs.json`)."""
        starts = dict(self.log_sources(run, "stdout"))
        starts.update(logs.legacy_starts(self.store.run_dir(run.id)))
        return starts

    def _log_pods(self, run: Run) -> list[Any]:
        """The run's pods whose command has started, oldest first (the look's, else read)."""
        pods = self._pods.get(run.id)
        if pods is None:
            state = self._state(run)
            if state is None:
                raise BackendError(f"cannot reach the cluster of run {run.id}'s Job")
            pods = state[1]
        return logs.started_pods(pods)

    def read_log(self, run: Run, stream: str, offset: int) -> list[LogBytes]:
        """The pods' log from local byte `offset` on: the pod it is in (where its log began
        in the file is core's account of sources), then, once that pod's command has ended
        and its log is all there, the next pod's from its start. A running pod's log is
        left to this process's follower when one streams it."""
        if not run.backend_data.get("job"):
            return []  # no Job was made: no pod, no log
        if run.spec.workers > 1:
            return self._read_workers(run, stream, offset)
        pods = self._log_pods(run)
        starts = self._starts(run)
        done: set[str] = set()
        while (found := logs.target(pods, starts, offset, done)) is not None:
            pod, begin = found
            name, complete = pod.metadata.name, logs.finished(pod)
            if not complete and self._streaming.get(run.id) == name:
                return []
            if self._read_already(run.id, name, offset):
                if not complete:
                    return []
                done.add(name)
                continue
            body = self._bodies.pop((run.id, name), None) or self._read_pod_log(run, name)
            if body is None:  # gone with its pod: its log cannot be had any more
                done.add(name)
                continue
            new = logs.as_log_bytes(logs.skip(body.pieces, offset - begin), stream, offset, name)
            end = new[-1].offset + len(new[-1].data) if new else offset
            self._read[run.id] = (name, end, time.monotonic(), complete)
            if new:
                return new
            if not complete:
                return []
            done.add(name)
        return []

    def _read_workers(self, run: Run, stream: str, offset: int) -> list[LogBytes]:
        """What each worker's pod logged since the last copy, whole lines (all of it once
        the pod's command ended), as `[rank] ` lines in the run's log; each worker's own
        bytes go to `workers/<rank>.log`, whose size is how much of it is copied (called
        under the run's lock, as every copy is)."""
        first = run.spec.array.first if run.spec.array is not None else 0
        run_dir = self.store.run_dir(run.id)
        found: list[LogBytes] = []
        for rank, pod in sorted(gang.newest_by_rank(self._log_pods(run)).items()):
            name = pod.metadata.name
            complete = logs.finished(pod)
            path = worker_log(run_dir, rank + first)
            have = path.stat().st_size if path.exists() else 0
            last = self._read.get(f"{run.id}/{rank}")
            if (
                last is not None
                and last[:2] == (name, have)
                and (last[3] or time.monotonic() - last[2] < REREAD_AFTER)
            ):
                continue  # read a moment ago, or read to its end
            body = self._bodies.pop((run.id, name), None) or self._read_pod_log(run, name)
            self._read[f"{run.id}/{rank}"] = (name, have, time.monotonic(), complete)
            if body is None:
                continue
            pieces = list(logs.skip(body.pieces, have))
            data = b"".join(piece for piece, _ in pieces)
            if not complete:
                data = data[: data.rfind(b"\n") + 1]  # whole lines while it runs
            if not data:
                continue
            path.parent.mkdir(exist_ok=True)
            with open(path, "ab") as fh:
                fh.write(data)
            self._read[f"{run.id}/{rank}"] = (name, have + len(data), time.monotonic(), complete)
            text = prefixed(rank + first, data)
            when = logs._time(pieces[0][1]) if pieces else None
            found.append(LogBytes(stream, offset, text, at=when))
            offset += len(text)
        return found

    def _read_already(self, run_id: str, pod: str, offset: int) -> bool:
        """Whether the last read of `pod` ended at `offset` and nothing can have come since:
        the pod's command had ended then, or it was a moment ago (core asks again after
        every answer: one read of a running pod's whole log per look is enough)."""
        last = self._read.get(run_id)
        if last is None or last[:2] != (pod, offset):
            return False
        return last[3] or time.monotonic() - last[2] < REREAD_AFTER

    def _read_pod_log(self, run: Run, pod: str) -> logs.PodLog | None:
        from kubernetes import client

        core = client.CoreV1Api(self.conn.api)
        return logs.read_pod_log(
            core, str(run.backend_data["namespace"]), pod, timeout=self.k8s.request_timeout
        )

    def follow_log(self, run: Run, offsets: Mapping[str, int]) -> Iterator[LogBytes | None] | None:
        """The pods' log as the kubelet streams it (`follow=True`), from `offsets` on, and
        a `None` whenever the Job, a pod or the Workload changes (the watch)."""
        if not run.backend_data.get("job") or run.spec.workers > 1:
            return None  # several workers: copied on each look (`_read_workers`)
        return self._following(run, offsets.get("stdout", 0))

    def _following(self, run: Run, offset: int) -> Iterator[LogBytes | None]:
        from kubernetes import client

        run = self.store.load(run.id)  # as it is now (the Job's uid, once a look saw it)
        watch = self._watch(run)
        if watch is None or not watch.synced(timeout=self.k8s.request_timeout):
            raise BackendError(f"cannot watch the Job of run {run.id} now")
        pushed: queue.SimpleQueue[LogBytes | logs.Ended | None] = queue.SimpleQueue()

        def changed() -> None:
            pushed.put(None)

        watch.listen(changed)
        core = client.CoreV1Api(watch.api)
        namespace = str(run.backend_data["namespace"])
        reader: logs.Follower | None = None
        done: set[str] = set()
        try:
            while not watch.stopped:  # (stopped: reconnected) core follows again
                if reader is None:
                    job, pods, workload = watch.snapshot()
                    found = logs.target(logs.started_pods(pods), self._starts(run), offset, done)
                    if found is not None:
                        pod, begin = found
                        if logs.finished(pod) and self._read_already(
                            run.id, pod.metadata.name, offset
                        ):
                            done.add(pod.metadata.name)  # read to its end already
                            continue
                        reader = logs.Follower(core, namespace, pod.metadata.name, pushed)
                        reader.start(offset - begin, offset)
                        self._streaming[run.id] = pod.metadata.name
                    elif self._over(run, job, pods, workload):
                        return  # all of its last pod's log is here
                item = pushed.get()
                if isinstance(item, logs.Ended):
                    reader = None
                    self._streaming.pop(run.id, None)
                    if item.error is not None:
                        raise BackendError(item.error)
                    pods = [p for p in watch.snapshot()[1] if p.metadata.name == item.pod]
                    if not pods or not logs.finished(pods[0]):
                        return  # the stream dropped while it runs: core follows again
                    done.add(item.pod)
                    continue
                if item is not None:
                    offset = item.offset + len(item.data)
                yield item
        finally:
            watch.unlisten(changed)
            self._streaming.pop(run.id, None)
            if reader is not None:
                reader.stop()

    def _over(self, run: Run, job: Any, pods: list[Any], workload: Any) -> bool:
        """Whether the Job will make no other pod (its run has ended, or is gone)."""
        data = run.backend_data
        view = status.observe(
            job,
            pods,
            workload,
            known=bool(data.get("uid")),
            queue=data.get("queue"),
            retries=int(data.get("retries") or 0),
        )
        return view.seen in (Seen.EXITED, Seen.GONE)

    def _stop_watch(self, run_id: str) -> None:
        watch = self._watches.pop(run_id, None)
        if watch is not None:
            watch.stop()

    # -- acting on the run ---------------------------------------------------------

    def signal(self, run: Run, signum: int) -> None:
        """Delete the Job, its pods with it (foreground propagation): Kubernetes sends the
        agent SIGTERM (it stops the command within the grace period); SIGKILL deletes at
        once. A Job can get no other signal."""
        from kubernetes.client.exceptions import ApiException

        data = run.backend_data
        if not data.get("job"):
            return
        grace = 0 if signum == signal.SIGKILL else None
        with contextlib.suppress(ApiException, BackendError, OSError):
            batch, _, _ = self._apis()
            try:
                batch.delete_namespaced_job(
                    str(data["job"]),
                    str(data["namespace"]),
                    propagation_policy="Foreground",
                    grace_period_seconds=grace,
                    _request_timeout=self.k8s.request_timeout,
                )
            except Exception as exc:
                if not is_unreachable(exc):
                    raise

    def cleanup(self, run: Run) -> None:
        """The end is recorded (core calls this once, after it): delete a Job that would go
        on trying to start a pod, let the run's pods go (qwex's finalizer held them for
        the end: `qwex_k8s.finalizer`), delete the run's Secret (its secret env). A finished
        Job stays for its TTL."""
        super().cleanup(run)  # core's follower of the run's log stops
        self._stop_watch(run.id)
        if run.id in self._stuck:
            self._stuck.discard(run.id)
            self.signal(run, signal.SIGKILL)
        self._release(run)
        for kept in (self._read, self._streaming, self._last_look):
            kept.pop(run.id, None)
        self._listed_look.discard(run.id)
        for read in [k for k in self._read if k.startswith(f"{run.id}/")]:
            del self._read[read]
        for key in [k for k in self._bodies if k[0] == run.id]:
            del self._bodies[key]
        if secret := run.backend_data.get("secret"):
            self._delete_secret(str(secret), str(run.backend_data.get("namespace")))

    def _release(self, run: Run) -> None:
        """Let the run's pods go (see `qwex_k8s.finalizer`)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        if not run.backend_data.get("namespace"):
            return  # no Job was ever made
        try:
            core = client.CoreV1Api(self.conn.api)
            timeout = self.k8s.request_timeout
            known = self._pods.pop(run.id, [])  # as the last look saw them: no list needed
            if not known or not all(release(core, pod, timeout=timeout) for pod in known):
                release_all(core, str(run.backend_data["namespace"]), run.id, timeout=timeout)
        except (ApiException, BackendError):
            pass  # `qwex gc` releases what is left
        except Exception as exc:
            if not is_unreachable(exc):
                raise


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` while the block runs."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
