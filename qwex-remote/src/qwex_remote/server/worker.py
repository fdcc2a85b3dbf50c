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
`lost` by core), and cancels asked while it was down are issued again.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import QwexError

from qwex_remote.server.configs import Configs
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


def job_spec(job: Job, config: QwexConfig, job_dir: Path) -> JobSpec:
    """The core `JobSpec` of a stored submission, built the one way core builds jobs."""
    from qwex_core.jobs import build_job

    sub: dict[str, Any] = job.spec
    container = {k: sub[k] for k in ("image", "network") if sub.get(k) is not None}
    extra: dict[str, Any] = {
        "backend": job.backend,
        "env": sub.get("env") or {},
        "labels": sub.get("labels") or {},
        "resources": {k: v for k, v in (sub.get("resources") or {}).items() if v is not None},
        "mounts": sub.get("mounts") or [],
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


@dataclass
class Worker:
    store: ServerStore
    host: PluginHost
    configs: Configs
    data_dir: Path
    name: str
    concurrency: int = 4
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    _active: dict[str, tuple[RunService, str]] = field(default_factory=dict)
    _cancelled: set[str] = field(default_factory=set)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qwex-worker", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            self.reconcile()
        except Exception:
            log.exception("reconciling the jobs of worker %s failed", self.name)
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("worker %s: a tick failed", self.name)
            self.wake.wait(BUSY_TICK if self._active else IDLE_TICK)
            self.wake.clear()

    def reconcile(self) -> None:
        """Take back the jobs this worker had claimed before a restart."""
        for job in self.store.owned(self.name):
            if job.run_id and job.job_dir and Path(job.job_dir).is_dir():
                config = self.configs.get(job.spec.get("profile"))
                service = job_service(self.host, config, Path(job.job_dir))
                self._active[job.id] = (service, job.run_id)
                log.info("job %s: re-attached to run %s", job.id, job.run_id)
            else:
                self.store.update(
                    job.id,
                    status="lost",
                    reason="the server stopped while starting the job",
                    finished_at=now(),
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
            "started_at": run.started_at,
            "finished_at": run.finished_at,
        }
        current = {k: aware(v) if k.endswith("_at") else v for k, v in vars(job).items()}
        if any(current.get(k) != v for k, v in values.items()):
            self.store.update(job.id, **values)

    def _start(self, job: Job) -> None:
        job_dir = self.data_dir / "jobs" / job.id
        try:
            shutil.rmtree(job_dir, ignore_errors=True)
            (job_dir / ".qwex").mkdir(parents=True)
            if job.snapshot:
                self._unpack(job.snapshot, job_dir)
            config = self.configs.get(job.spec.get("profile"))
            spec = job_spec(job, config, job_dir)
            if job.spec.get("secrets"):  # decrypted now, kept in memory only
                from qwex_remote.server.secrets import resolve

                spec.secret_env = resolve(self.store, self.data_dir, job.spec["secrets"])
            self.store.update(job.id, job_dir=str(job_dir))
            service = job_service(self.host, config, job_dir)
            run = service.submit(spec)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, QwexError) else f"{type(exc).__name__}: {exc}"
            log.warning("job %s failed to start: %s", job.id, reason)
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
        from qwex_core.agent.unpack import SnapshotError, unpack

        snapshot = self.store.snapshot(sha256)
        if snapshot is None:
            raise QwexError(f"snapshot {sha256} is no longer on the server")
        try:
            unpack(snapshot.path, str(job_dir))
        except SnapshotError as exc:
            raise QwexError(str(exc)) from None
