"""The server's own worker: it takes jobs from the database and runs them through core.

A thread started by the app's lifespan (not FastAPI's BackgroundTasks, which run
after a response in the request's own process and die with it). Each tick it
carries out cancels asked for its jobs, brings its running jobs up to date
through `RunService.observe` (where core decides `lost`) and mirrors status,
reason and exit code into the database, then claims new jobs while it has room.
Each job runs in its own folder, `DATA_DIR/jobs/<id>/`: the uploaded snapshot
unpacked (or nothing), with the job's own run store under `.qwex/`.

On start it reconciles: the jobs it had claimed are re-attached (a run whose
agent or container is alive goes on; one whose supervisor vanished is recorded
`lost` by core), and cancels asked while it was down are issued again. A job it
had claimed but whose run never started goes back to the queue. A database
outage stops nothing: the running jobs go on, and the worker records their ends
and reconciles again once the database is back.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import QwexError

from qwex_remote.server import policy
from qwex_remote.server.configs import Configs
from qwex_remote.server.db import is_outage
from qwex_remote.server.metrics import Metrics
from qwex_remote.server.retention import Sweeper
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.store import ServerStore, aware, now

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.plugin.manager import PluginHost
    from qwex_core.service import RunService

    from qwex_remote.server.tables import Job

log = logging.getLogger("qwex.server")
BUSY_TICK = 0.05
IDLE_TICK = 1.0


def job_service(host: PluginHost, config: QwexConfig, job_dir: Path) -> RunService:
    """The run service of one job: core's, over the run store in the job's folder. The
    server's configuration is used, never one found in the uploaded snapshot."""
    from qwex_core.service import RunService
    from qwex_core.store import RunStore

    return RunService(host, config, RunStore(job_dir))


def _started_run(job_dir: Path) -> str | None:
    """The run started in a job's folder, if one was: a run store's folder that holds a
    record (core writes it before it starts anything)."""
    from qwex_core.store import RunStore

    for record in RunStore(job_dir).iter_records():
        return str(record["id"])
    return None


def job_spec(
    job: Job, config: QwexConfig, job_dir: Path, mount_roots: list[str] | None = None
) -> JobSpec:
    """The core `JobSpec` of a stored submission, built the one way core builds jobs.

    With `mount_roots` (the policy's `mounts`), each mount's source is judged again where
    it leads now and the runner gets that resolved path (`policy.allowed_source`)."""
    from qwex_core.jobs import build_job

    sub: dict[str, Any] = job.spec
    container = {k: sub[k] for k in ("image", "network") if sub.get(k) is not None}
    extra: dict[str, Any] = {
        "backend": job.backend,
        "env": sub.get("env") or {},
        "labels": sub.get("labels") or {},
        "resources": {k: v for k, v in (sub.get("resources") or {}).items() if v is not None},
        "mounts": _mounts(sub.get("mounts") or [], mount_roots),
        "grace_period": sub.get("grace_period", 10.0),
        "container": container,
    }
    cwd = job_dir
    if sub.get("workdir"):
        # The schema refuses `..` and absolute paths; a symlink of the snapshot may still lead
        # out of the job's folder, and the job would start there.
        cwd = (job_dir / sub["workdir"]).resolve()
        if not cwd.is_relative_to(job_dir.resolve()) or not cwd.is_dir():
            raise QwexError(f"workdir {sub['workdir']} is not a folder of the job's snapshot")
    return build_job(
        config, sub["command"], project_dir=job_dir, cwd=cwd, name=sub.get("name"), **extra
    )


def _mounts(mounts: list[dict[str, Any]], roots: list[str] | None) -> list[dict[str, Any]]:
    """The submission's mounts with their sources resolved and checked again (at start)."""
    if roots is None:
        return mounts
    try:
        return [{**m, "source": policy.allowed_source(m["source"], roots)} for m in mounts]
    except policy.Refused as exc:
        raise QwexError(f"when the job started: {exc}") from None


@dataclass
class Worker:
    store: ServerStore
    host: PluginHost
    configs: Configs
    data_dir: Path
    name: str
    concurrency: int = 4
    settings: ServerSettings = field(default_factory=ServerSettings)
    """The policy and limits the worker applies again when a job starts."""
    metrics: Metrics | None = None
    """Where the worker observes the queue wait of the jobs it sees start."""
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _active: dict[str, tuple[RunService, str]] = field(default_factory=dict)
    _cancelled: set[str] = field(default_factory=set)
    _thread: threading.Thread | None = None
    _sweeper: Sweeper | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qwex-worker", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        """Tick until stopped. A database outage is logged once (by the store's `Outage`):
        the worker keeps its running jobs, waits, and when the database is back takes
        back whatever the outage interrupted (`reconcile`) before it goes on."""
        must_reconcile = True
        while not self.stop.is_set():
            try:
                if must_reconcile:
                    must_reconcile = False
                    self.reconcile()
                self.tick()
            except Exception as exc:
                if is_outage(exc):
                    self.store.outage.failed(exc)
                    must_reconcile = True
                else:
                    log.exception("worker %s: a tick failed", self.name)
            busy = self._active and not self.store.outage.down
            self.wake.wait(BUSY_TICK if busy else IDLE_TICK)
            self.wake.clear()

    def reconcile(self) -> None:
        """Take back the jobs this worker claimed but does not follow: all of them after a
        restart, or one whose start or end a database outage interrupted. A job whose run
        was started (its run is in the job folder's run store, recorded in the database or
        not) is re-attached, so it never runs twice; one whose run never started goes back
        to the queue: nothing ran, so nothing is lost."""
        for job in self.store.owned(self.name):
            if job.id in self._active:
                continue
            try:
                self._take_back(job)
            except QwexError as exc:  # its profile left the configuration, say: the next
                log.warning("job %s: cannot take it back: %s", job.id, exc)  # one goes on

    def _take_back(self, job: Job) -> None:
        job_dir = Path(job.job_dir) if job.job_dir else self.data_dir / "jobs" / job.id
        run_id = job.run_id or _started_run(job_dir)
        if run_id is None:
            self._unstarted(job)
        elif not job_dir.is_dir():
            self.store.update(
                job.id,
                status="lost",
                reason="its folder on the server is gone (removed while the server was down?)",
                finished_at=now(),
            )
        else:
            config = self.configs.get(job.spec.get("profile"))
            service = job_service(self.host, config, job_dir)
            if not job.run_id:  # the server stopped before it could note the run
                self._record_run(job.id, job_dir, service, run_id)
            self._active[job.id] = (service, run_id)
            log.info("job %s: re-attached to run %s", job.id, run_id)

    def _unstarted(self, job: Job) -> None:
        """A claimed job whose run never started: back to the queue, or cancelled when
        that was asked meanwhile."""
        if job.cancel_reason:
            self.store.update(
                job.id, status="cancelled", reason=job.cancel_reason, finished_at=now()
            )
        elif self.store.requeue(job.id, self.name):
            shutil.rmtree(self.data_dir / "jobs" / job.id, ignore_errors=True)
            log.info("job %s: back in the queue (claimed, but its run never started)", job.id)

    def _record_run(self, job_id: str, job_dir: Path, service: RunService, run_id: str) -> None:
        self.store.update(
            job_id,
            job_dir=str(job_dir),
            run_id=run_id,
            stdout_path=str(service.store.log_path(run_id, "stdout")),
            stderr_path=str(service.store.log_path(run_id, "stderr")),
        )

    def tick(self) -> None:
        if self._active:  # a submit wakes the worker: an idle one only looks for work
            for job in self.store.owned(self.name):
                if job.id in self._active:
                    self._follow_up(job)
        while len(self._active) < self.concurrency and not self.stop.is_set():
            claimed = self.store.claim(self.name)
            if claimed is None:
                break
            self._start(claimed)
        self._sweep()

    def _sweep(self) -> None:
        """Empty the folders of jobs final for longer than `server.job_retention`."""
        retention = self.settings.job_retention
        if retention is None:
            return
        if self._sweeper is None:
            self._sweeper = Sweeper(self.store, self.name, retention)
        self._sweeper.maybe_sweep()

    def _follow_up(self, job: Job) -> None:
        service, run_id = self._active[job.id]
        try:
            if job.cancel_reason and job.id not in self._cancelled:
                self._cancelled.add(job.id)
                service.cancel(service.store.load(run_id), reason=job.cancel_reason)
            run = service.observe(run_id)
        except QwexError as exc:
            log.warning("job %s: %s", job.id, exc)
            return
        self._mirror(job, run)
        if run.is_final:
            self._active.pop(job.id, None)
            self._cancelled.discard(job.id)

    def _mirror(self, job: Job, run: Run) -> None:
        values: dict[str, Any] = {
            "status": run.status.value,
            "reason": run.reason,
            "exit_code": run.exit_code,
            "signal": run.signal,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        }
        current = {k: aware(v) if k.endswith("_at") else v for k, v in vars(job).items()}
        if any(current.get(k) != v for k, v in values.items()):
            self.store.update(job.id, **values)
            if current.get("started_at") is None and run.started_at is not None:
                self._started(job, run.started_at)

    def _started(self, job: Job, started_at: datetime) -> None:
        """The job's command runs (or ran): observe how long it waited since submitted."""
        submitted = aware(job.created_at)
        started = aware(started_at)
        if self.metrics is not None and submitted is not None and started is not None:
            wait = max(0.0, (started - submitted).total_seconds())
            self.metrics.queue_wait.labels(job.backend).observe(wait)

    def _start(self, job: Job) -> None:
        job_dir = self.data_dir / "jobs" / job.id
        try:
            shutil.rmtree(job_dir, ignore_errors=True)
            (job_dir / ".qwex").mkdir(parents=True)
            if job.snapshot:
                self._unpack(job.snapshot, job_dir)
            config = self.configs.get(job.spec.get("profile"))
            spec = job_spec(job, config, job_dir, self.settings.mounts)
            if job.spec.get("secrets"):  # decrypted now, kept in memory only
                from qwex_remote.server.secrets import resolve

                spec.secret_env = resolve(self.store, self.data_dir, job.spec["secrets"])
            self.store.update(job.id, job_dir=str(job_dir))
            service = job_service(self.host, config, job_dir)
            run = service.submit(spec)
        except Exception as exc:
            if is_outage(exc):  # not the job's fault: `reconcile` takes it back later
                raise
            reason = str(exc) if isinstance(exc, QwexError) else f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed to start: %s", job.id, reason)
            shutil.rmtree(job_dir, ignore_errors=True)  # no run, no logs: nothing to keep
            self.store.update(job.id, status="failed", reason=reason, finished_at=now())
            return
        self.store.update(
            job.id,
            run_id=run.id,
            stdout_path=str(service.store.log_path(run.id, "stdout")),
            stderr_path=str(service.store.log_path(run.id, "stderr")),
        )
        self._active[job.id] = (service, run.id)
        self._follow_up(job)

    def _unpack(self, sha256: str, job_dir: Path) -> None:
        from qwex_core.agent.unpack import SnapshotError, UnpackedTooLarge, unpack

        from qwex_remote.server.limits import snapshot_too_large

        snapshot = self.store.snapshot(sha256)
        if snapshot is None:
            raise QwexError(f"snapshot {sha256} is no longer on the server")
        limits = self.settings
        try:
            unpack(
                snapshot.path,
                str(job_dir),
                max_bytes=limits.unpacked_limit(),
                max_files=limits.max_snapshot_files,
            )
        except UnpackedTooLarge as exc:  # the limits were lowered since the upload
            raise QwexError(snapshot_too_large(exc)) from None
        except SnapshotError as exc:
            raise QwexError(str(exc)) from None
