"""`KubernetesRunner`: one `batch/v1` Job per run, queued by Kueue when a queue is named.

`start` makes the project's snapshot ConfigMap (content-addressed, immutable, owned
by the Jobs that use it), records the Job's name, namespace and context in the run
record, then creates the Job. The agent runs in the pod and keeps its record there;
the host's record is written by whichever qwex process observes the run (`probe`):
it copies the pod's log into the run's log file and records `queued` (with Kueue's
own message), `running` and the final state (the agent's record, from the
container's termination message, else the Job's and pod's conditions), so `qwex
logs` and `qwex status` work after the Job is gone. A follower watches the Job, its
pods and Workload instead of polling (`qwex_k8s.watch`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import FINAL_STATUSES, backdate, transition
from qwex_core.errors import BackendError, SpecError
from qwex_core.lifecycle import CancelRequest, Probe, Seen
from qwex_core.observed import record_lock
from qwex_core.ownership import owner_token
from qwex_core.runners.base import Runner

from qwex_k8s import manifests, status
from qwex_k8s.client import Connection, api_message, connect, is_unreachable, rest
from qwex_k8s.finalizer import release, release_all
from qwex_k8s.logs import copied, copy_pod_log
from qwex_k8s.settings import SNAPSHOT, K8sSettings
from qwex_k8s.visibility import QueuePositions
from qwex_k8s.watch import KUEUE, RunWatch, workload_selector

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.snapshot import Snapshot
    from qwex_core.store import RunStore

WATCH_AFTER = 5.0
"""A run probed twice within this many seconds is being polled: watch it instead."""
LOG_JOIN = 5.0
"""Seconds to let the log follower reach the end of a finished pod's log."""
START_LOCK = "k8s-start.lock"
"""Held by the qwex process starting a run until the cluster has its Job (an flock: it goes
with the process)."""
LOG_GONE = "the Job's TTL had passed, or the pod was deleted, before a qwex process looked"
START_GRACE = 10.0
"""Seconds a run may have no Job and no starter before it is known never to get one."""


LISTING_FRESH = 5.0
"""Seconds the Jobs, pods and Workloads of a `prefetch` stand for the probes that follow."""


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


class KubernetesRunner(Runner):
    """Runs each job as a Kubernetes Job of `spec.container.image`."""

    uses_container = True
    accepts_secret_env = True
    """Secret env goes into a Secret owned by the Job; the pod reads it by `secretKeyRef`."""
    start_timeout = 7 * 24 * 3600.0
    """A Job may wait in a queue for days: whether it is lost is told by the cluster (its
    Job is gone), not by its age."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self.k8s = self.settings("k8s", K8sSettings)
        self._conn: Connection | None = None
        self._watches: dict[str, RunWatch] = {}
        self._followers: dict[str, tuple[str, threading.Thread, threading.Event]] = {}
        self._last_probe: dict[str, float] = {}
        self._positions: QueuePositions | None = None
        self._listed: Listing | None = None
        self._pods: dict[str, list[Any]] = {}
        """The pods of each run as the last look saw them (released once its end is kept)."""
        self._snapshot: tuple[int, Snapshot] | None = None

    @property
    def conn(self) -> Connection:
        """The cluster connection, opened on first use (the client import is not free)."""
        if self._conn is None:
            self._conn = connect(self.k8s)
        return self._conn

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
        from kubernetes.client.exceptions import ApiException

        namespace = self.conn.namespace
        queues = f"/apis/{KUEUE[0]}/{KUEUE[1]}/namespaces/{namespace}/localqueues"
        try:
            rest(self.conn.api, "GET", f"{queues}/{queue}", timeout=self.k8s.request_timeout)
            return
        except ApiException as exc:
            if exc.status != 404:
                raise BackendError(
                    f"cannot check the Kueue LocalQueue {queue!r} in namespace {namespace}: "
                    f"{api_message(exc)}"
                ) from None
        try:
            found = rest(self.conn.api, "GET", queues, timeout=self.k8s.request_timeout)
            names = ", ".join(sorted(q["metadata"]["name"] for q in found["items"])) or "none"
        except ApiException as exc:
            names = f"cannot list them: {api_message(exc)}"
        raise SpecError(
            f"no Kueue LocalQueue {queue!r} in namespace {namespace} (LocalQueues there: "
            f"{names}); fix --queue or [tool.qwex.k8s] queue, or create it (docs/kubernetes.md)"
        )

    def _check_priority(self, name: str) -> None:
        """Kueue creates no Workload for an unknown priority class: the run would wait forever."""
        from kubernetes.client.exceptions import ApiException

        classes = f"/apis/{KUEUE[0]}/{KUEUE[1]}/workloadpriorityclasses"
        try:
            rest(self.conn.api, "GET", f"{classes}/{name}", timeout=self.k8s.request_timeout)
            return
        except ApiException as exc:
            if exc.status != 404:
                return  # not allowed to look (a namespaced user): let Kueue judge
        found = rest(self.conn.api, "GET", classes, timeout=self.k8s.request_timeout)
        names = ", ".join(sorted(c["metadata"]["name"] for c in found["items"])) or "none"
        raise SpecError(
            f"no Kueue WorkloadPriorityClass {name!r} (there are: {names}); fix "
            "[tool.qwex.k8s] priority_class"
        )

    def start(self, run: Run) -> None:
        with _held(self.store.run_dir(run.id) / START_LOCK):
            self._start(run)

    def _start(self, run: Run) -> None:
        from kubernetes.client.exceptions import ApiException

        conn = self.conn
        name = manifests.job_name(run.id)
        snapshot = None
        if self.k8s.code == SNAPSHOT:
            snap = self._snapshot[1] if self._snapshot else None
            if snap is None:
                snap = self._make_snapshot()
            self._snapshot = None
            snapshot = manifests.snapshot_name(snap.sha256)
        run.backend_data = {
            "job": name,
            "namespace": conn.namespace,
            "context": conn.context,
            "queue": self.k8s.queue,
            "retries": self.k8s.retries,
            "snapshot": snapshot,
            "secret": manifests.secret_name(run.id) if run.spec.secret_env else None,
        }
        self.store.save(run)  # before anything exists: every qwex process can find it again
        body = manifests.job_manifest(run, self.k8s, self._facts(run, snapshot))
        secret = manifests.secret_name(run.id) if run.spec.secret_env else None
        try:
            if snapshot is not None and snap is not None:
                self._ensure_snapshot(snap, conn.namespace)
            if secret is not None:
                self._create_secret(run)
            job = rest(
                conn.api,
                "POST",
                f"/apis/batch/v1/namespaces/{conn.namespace}/jobs",
                body,
                timeout=self.k8s.request_timeout,
            )
        except ApiException as exc:
            if secret is not None:
                self._delete_secret(secret, conn.namespace)
            raise BackendError(
                f"the cluster refused the Job {name} in namespace {conn.namespace}: "
                f"{api_message(exc)}"
            ) from None
        run.backend_data["uid"] = job["metadata"]["uid"]
        self.store.save(run)
        if snapshot is not None:
            self._own_snapshot(snapshot, name, job["metadata"]["uid"])
        if secret is not None:
            self._own(f"/api/v1/namespaces/{conn.namespace}/secrets/{secret}", name, job)

    def _create_secret(self, run: Run) -> None:
        """Create the run's Secret (its secret env; see `manifests.secret_manifest`)."""
        namespace = self.conn.namespace
        body = manifests.secret_manifest(run, namespace)
        body["metadata"]["annotations"] = {  # whose it is, for `qwex gc` (see `gc`)
            manifests.ANNOTATION_PROJECT: str(self.store.project_dir),
            manifests.ANNOTATION_OWNER: owner_token(self.store.project_dir) or "",
        }
        path = f"/api/v1/namespaces/{namespace}/secrets"
        rest(self.conn.api, "POST", path, body, timeout=self.k8s.request_timeout)

    def _own(self, path: str, name: str, job: dict[str, Any]) -> None:
        """Make the Job the owner of the object at `path`: the cluster deletes it with the Job."""
        from kubernetes.client.exceptions import ApiException

        reference = manifests.owner_reference(name, job["metadata"]["uid"])
        patch = {"metadata": {"ownerReferences": [reference]}}
        with contextlib.suppress(ApiException, BackendError):  # cleanup deletes it too
            rest(
                self.conn.api,
                "PATCH",
                path,
                patch,
                content_type="application/strategic-merge-patch+json",
                timeout=self.k8s.request_timeout,
            )

    def _delete_secret(self, secret: str, namespace: str) -> None:
        """Delete a run's Secret (best effort: it is owned by the Job, which takes it along)."""
        from kubernetes.client.exceptions import ApiException

        with contextlib.suppress(ApiException, BackendError):
            rest(
                self.conn.api,
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
        return str(yaml.safe_dump_all(docs, sort_keys=False))

    def _ensure_snapshot(self, snap: Snapshot, namespace: str) -> None:
        """Create the snapshot's ConfigMap unless it exists (same content, same name)."""
        from kubernetes.client.exceptions import ApiException

        body = manifests.snapshot_configmap(snap.sha256, snap.data, namespace)
        try:
            rest(
                self.conn.api,
                "POST",
                f"/api/v1/namespaces/{namespace}/configmaps",
                body,
                timeout=self.k8s.request_timeout,
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    def _own_snapshot(self, name: str, job: str, uid: str) -> None:
        """Add the Job to the ConfigMap's owners: it goes with the last Job using it."""
        from kubernetes.client.exceptions import ApiException

        patch = {"metadata": {"ownerReferences": [manifests.owner_reference(job, uid)]}}
        with contextlib.suppress(ApiException, BackendError):  # best effort: the Job runs
            rest(
                self.conn.api,
                "PATCH",
                f"/api/v1/namespaces/{self.conn.namespace}/configmaps/{name}",
                patch,
                content_type="application/strategic-merge-patch+json",
                timeout=self.k8s.request_timeout,
            )

    def started(self, run: Run) -> None:
        super().started(run)
        self._watch(run)  # the starter follows the run: watch it from now on

    # -- looking at the run ------------------------------------------------------

    def _watch(self, run: Run) -> RunWatch | None:
        data = run.backend_data
        if not data.get("job"):
            return None
        watch = self._watches.get(run.id)
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

    def _state(self, run: Run) -> tuple[Any | None, list[Any], dict[str, Any] | None] | None:
        """The run's Job, pods and Workload: from the watch when there is one, else read
        now. None when the API server cannot be reached."""
        now = time.monotonic()
        polled = now - self._last_probe.get(run.id, -1e9) < WATCH_AFTER
        self._last_probe[run.id] = now
        watch = self._watches.get(run.id)
        if watch is None and polled:
            watch = self._watch(run)
        if watch is not None and not watch.stopped and watch.synced(timeout=5.0):
            return watch.snapshot()
        return self._read(run)

    def prefetch(self) -> None:
        """One list each of qwex's Jobs, pods and Kueue Workloads in the namespace, for the
        probes of a listing: its requests do not grow with the number of live runs."""
        from kubernetes.client.exceptions import ApiException

        namespace = self.conn.namespace
        mine = f"{manifests.MANAGED_BY}=qwex"
        try:
            batch, core, custom = self._apis()
            timeout = self.k8s.request_timeout
            jobs = batch.list_namespaced_job(
                namespace, label_selector=mine, _request_timeout=timeout
            )
            pods = core.list_namespaced_pod(
                namespace,
                label_selector=f"{mine},{manifests.LABEL_RUN_ID}",
                _request_timeout=timeout,
            )
            try:
                workloads = custom.list_namespaced_custom_object(
                    *KUEUE, namespace, "workloads", _request_timeout=timeout
                )["items"]
            except ApiException:
                workloads = []  # no Kueue here: queued runs are read one by one
        except (ApiException, BackendError):
            return  # each run is then read on its own
        except Exception as exc:
            if is_unreachable(exc):
                return
            raise
        by_run: dict[str, list[Any]] = {}
        for pod in pods.items:
            by_run.setdefault(pod.metadata.labels[manifests.LABEL_RUN_ID], []).append(pod)
        self._listed = Listing(
            time.monotonic(),
            namespace,
            {job.metadata.name: job for job in jobs.items},
            by_run,
            {
                (w["metadata"].get("labels") or {}).get("kueue.x-k8s.io/job-uid", ""): w
                for w in workloads
            },
        )

    def _from_listing(self, run: Run) -> tuple[Any | None, list[Any], dict[str, Any] | None] | None:
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

    def _read(self, run: Run) -> tuple[Any | None, list[Any], dict[str, Any] | None] | None:
        from kubernetes.client.exceptions import ApiException

        listed = self._from_listing(run)
        if listed is not None:
            return listed
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

    def probe(self, run: Run) -> Probe | None:
        data = run.backend_data
        if not data.get("job"):
            if self._starter_died(run):
                return self._never_created(run)
            return Probe(Seen.NOTHING, "its Job")
        what = f"its Job {data['job']}"
        state = self._state(run)
        if state is None:
            return None
        job, pods, workload = state
        if job is None and not data.get("uid") and self._starter_died(run):
            return self._never_created(run)
        seen = status.observe(
            job,
            pods,
            workload,
            known=bool(data.get("uid")),
            queue=data.get("queue"),
            retries=int(data.get("retries") or 0),
        )
        cancel = CancelRequest.of(self.store.run_dir(run.id))
        if seen.pod and not seen.is_final and self._from_listing(run) is None:
            self._copy_logs(run, seen.pod, final=False)  # a listing copies at the end only
        if pods:
            self._note_attempts(run, pods)
            self._pods[run.id] = pods
        if cancel is not None:
            deleting = job is not None and job.metadata.deletion_timestamp is not None
            live = any(status.still_running(p) for p in pods)
            if seen.phase == status.GONE or (deleting and not live) or seen.is_final:
                cancelled = not seen.is_final or seen.status == "cancelled" or seen.status == "lost"
                self._finish(
                    run,
                    seen,
                    "cancelled" if cancelled else seen.status,
                    cancel.reason if cancelled else seen.reason,
                )
                return Probe(Seen.EXITED, what, exit_code=seen.exit_code)
        if seen.phase == status.NOTHING:
            return Probe(Seen.NOTHING, what)
        if seen.phase == status.GONE:
            return Probe(Seen.GONE, what)
        if seen.is_final:
            self._finish(run, seen, seen.status, seen.reason)
            if seen.stuck:
                self.signal(run, signal.SIGKILL)  # a pod that cannot start: leave none behind
            return Probe(Seen.EXITED, what, exit_code=seen.exit_code)
        if seen.phase == status.QUEUED:
            self._advance(run, "queued", self._with_position(run, seen.reason, workload))
            return Probe(Seen.STARTING, what)
        if seen.phase == status.RUNNING:
            self._advance(run, "running", None, at=seen.started_at)
            return Probe(Seen.ALIVE, f"its pod {seen.pod}")
        since = seen.unschedulable_since
        if (
            since is not None
            and (datetime.now(UTC) - since).total_seconds() > self.k8s.schedule_timeout
        ):
            self._finish(run, seen, "failed", seen.reason)
            self.signal(run, signal.SIGKILL)
            return Probe(Seen.EXITED, what)
        if run.status.value == "queued" and job is not None and not job.spec.suspend:
            self._advance(run, "queued", f"admitted by Kueue; {seen.reason}")
        return Probe(Seen.STARTING, what)

    def _with_position(self, run: Run, reason: str, workload: dict[str, Any] | None) -> str:
        """The queued run's reason, with its place in the queue when Kueue tells it."""
        queue = run.backend_data.get("queue")
        name = ((workload or {}).get("metadata") or {}).get("name")
        if not queue or not name:
            return reason
        if self._positions is None:
            self._positions = QueuePositions(self.conn.api, self.k8s.request_timeout)
        where = self._positions.describe(str(run.backend_data["namespace"]), str(queue), name)
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

    def _never_created(self, run: Run) -> Probe:
        """Record the end of a run whose Job was never created: nothing ran."""
        current = self.store.load(run.id)
        if not current.is_final:
            self.store.record_end(
                current,
                "failed",
                "the qwex process starting the run stopped before it created the Job "
                "(nothing ran); start it again",
            )
        return Probe(Seen.EXITED, "its Job")

    # -- writing the host's record -----------------------------------------------

    def _note_attempts(self, run: Run, pods: list[Any]) -> None:
        """Keep each attempt (pod) in the record's `backend_data["attempts"]`, written only
        when something changed: `qwex status` shows them, in order."""
        from qwex_k8s.logs import START

        with record_lock(self.store.run_dir(run.id)):
            current = self.store.read(run.id)
            if current.get("status") in FINAL_STATUSES:
                return
            data = current.setdefault("backend_data", {})
            starts = {
                k.removeprefix(START): v
                for k, v in copied(self.store.run_dir(run.id)).items()
                if k.startswith(START)
            }
            noted = status.attempts(pods, list(data.get("attempts") or []), starts)
            if noted != data.get("attempts"):
                data["attempts"] = noted
                self._save(current)

    def _advance(self, run: Run, new: str, reason: str | None, at: datetime | None = None) -> None:
        """Record a non-final status the cluster shows (`queued` with Kueue's words,
        `running`), once: a changed reason alone updates the record's current reason."""
        with record_lock(self.store.run_dir(run.id)):
            current = self.store.read(run.id)
            if current.get("status") in FINAL_STATUSES:
                return
            if current.get("status") == new:
                if current.get("reason") != reason:  # the history keeps why it entered it
                    current["reason"] = reason
                    self._save(current)
                return
            transition(current, new, reason)
            if at is not None and new == "running":
                backdate(current, at)
            self._save(current)

    def _save(self, record: dict[str, Any]) -> None:
        from qwex_core.models import Run

        self.store.save(Run.model_validate(record))

    def _finish(self, run: Run, seen: status.Observation, final: str, reason: str) -> None:
        """Record the end: `running` first if the run was never seen running, then the end
        through `RunStore.record_end`, with the exit code and signal the agent recorded."""
        from qwex_core.models import Run

        if seen.pod and seen.finished_at is not None:
            # All of it, before the end is read. A pod of which nothing could ever be copied
            # (nobody looked before its log was gone) is said in the reason.
            if not self._copy_logs(run, seen.pod, final=True) and seen.pod not in copied(
                self.store.run_dir(run.id)
            ):
                reason = f"{reason} (qwex could not copy its pod's log: {LOG_GONE})"
        else:
            self._stop_follower(run.id)
        with record_lock(self.store.run_dir(run.id)):
            current = self.store.read(run.id)
            if current.get("status") in FINAL_STATUSES:
                self._release(run)
                return
            started = seen.started_at
            if (
                started is not None
                and current.get("status") != "running"
                and not current.get("started_at")
            ):
                transition(current, "running", None)
                backdate(current, started)
            current["exit_code"] = seen.exit_code
            current["signal"] = seen.signal
            ended = self.store.record_end(Run.model_validate(current), final, reason)
            if seen.finished_at is not None:  # when it ended, not when a qwex process saw it
                record = ended.model_dump(mode="json")
                backdate(record, seen.finished_at)
                self.store.save(Run.model_validate(record), durable=True)
        self._stop_watch(run.id)
        self._release(run)

    def _release(self, run: Run) -> None:
        """The end is recorded: let the run's pods go (see `qwex_k8s.finalizer`)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        core = client.CoreV1Api(self.conn.api)
        timeout = self.k8s.request_timeout
        try:
            known = self._pods.pop(run.id, [])  # as the last look saw them: no list needed
            if not known or not all(release(core, pod, timeout=timeout) for pod in known):
                release_all(core, str(run.backend_data["namespace"]), run.id, timeout=timeout)
        except (ApiException, BackendError):
            pass  # `qwex gc` releases what is left
        except Exception as exc:
            if not is_unreachable(exc):
                raise

    def _copy_logs(self, run: Run, pod: str, *, final: bool) -> bool:
        """Bring the run's log file up to the pod's log: a follower thread while it runs
        and someone watches, the rest at once when it ended (False: that final copy could
        not be made)."""
        from kubernetes import client

        core = client.CoreV1Api(self.conn.api)
        namespace = str(run.backend_data["namespace"])
        run_dir = self.store.run_dir(run.id)
        follower = self._followers.get(run.id)
        if final:  # the container has exited: its log stream ends by itself
            if follower is not None:
                follower[1].join(LOG_JOIN)
                self._stop_follower(run.id)
            return copy_pod_log(
                core, namespace, pod, run_dir, follow=False, timeout=self.k8s.request_timeout
            )
        if follower is not None and follower[0] == pod and follower[1].is_alive():
            return True
        if run.id not in self._watches:  # a look from `qwex status`: what is there now
            copy_pod_log(
                core,
                namespace,
                pod,
                run_dir,
                follow=False,
                timeout=self.k8s.request_timeout,
                lock_wait=0.0,
            )
            return True
        stop = threading.Event()
        thread = threading.Thread(
            target=self._follow_log,
            args=(core, namespace, pod, run_dir, stop),
            daemon=True,
            name="qwex-k8s-log",
        )
        self._followers[run.id] = (pod, thread, stop)
        thread.start()
        return True

    def _follow_log(
        self, core: Any, namespace: str, pod: str, run_dir: Any, stop: threading.Event
    ) -> None:
        """Follow the pod's log; a dropped stream resumes where it stopped (no line twice)."""
        while not stop.is_set():
            if copy_pod_log(
                core, namespace, pod, run_dir, follow=True, timeout=0, lock_wait=3600.0, stop=stop
            ):
                return
            stop.wait(0.5)

    def _stop_watch(self, run_id: str) -> None:
        watch = self._watches.pop(run_id, None)
        if watch is not None:
            watch.stop()
        self._stop_follower(run_id)

    def _stop_follower(self, run_id: str) -> None:
        follower = self._followers.pop(run_id, None)
        if follower is not None:
            follower[2].set()

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

    def wait_for_change(self, run: Run, seconds: float) -> None:
        watch = self._watch(run) if not run.is_final else None
        if watch is None:
            time.sleep(seconds)
            return
        watch.changed.wait(seconds)
        watch.changed.clear()

    def cleanup(self, run: Run) -> None:
        """The record holds the logs and the end; the Job goes with its TTL, its Secret (the
        run's secret env, no longer needed) now."""
        self._stop_watch(run.id)
        if secret := run.backend_data.get("secret"):
            self._delete_secret(str(secret), str(run.backend_data.get("namespace")))


@contextlib.contextmanager
def _held(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` while the block runs."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
