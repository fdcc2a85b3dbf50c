"""The interface a backend implements, and the run lifecycle every backend shares.

A backend says how to start the qwex agent somewhere (`start`), how to look at
what it started (`probe`), how to signal it (`signal`) and, optionally, how to
clean up. Everything else is the same for every backend and lives here and in
`qwex_core.lifecycle`: bringing a record up to date (`refresh`), deciding that a
run is `lost`, the cancel marker and its reason, and the agent's command line.
Every method may be called by another qwex process than the one that started
the run, so a backend finds its run again from the record and the run folder.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, TypeVar

import qwex_core
from qwex_core.agent.main import command_line
from qwex_core.agent.record import request_cancel
from qwex_core.lifecycle import Action, CancelRequest, Probe, Seen, Verdict, judge
from qwex_core.store import record_lock

if TYPE_CHECKING:
    from pydantic import BaseModel

    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.store import RunStore

    Settings = TypeVar("Settings", bound=BaseModel)


def _local_launcher() -> tuple[str, ...]:
    """This machine's Python in isolated mode without `site` (`-I -S`), with only the folder
    qwex-core is installed in added after the standard library.

    The agent starts in the user's project: `python -m` put that folder first on its path,
    and a `json.py` or `signal.py` there (or in a job's `PYTHONPATH`) was imported instead
    of the standard library's, so the agent died before the command started. The agent
    needs nothing else: it is standard library only. (Skipping `site` and `runpy` also
    saves a little: a local `qwex run -q -- true` took 138.2 against 141.0 ms, medians of
    21 alternated runs.)"""
    where = os.path.dirname(os.path.dirname(os.path.abspath(qwex_core.__file__)))
    code = f"import sys; sys.path.append({where!r}); import qwex_core.agent.__main__"
    return (sys.executable, "-I", "-S", "-c", code)


LOCAL_LAUNCHER: tuple[str, ...] = _local_launcher()
"""How to start the agent with this machine's Python (qwex-core installed): the words
before `run --local ...` (see `_local_launcher`)."""


class Runner(ABC):
    """Base class of every backend. Subclass it and register it with `qwex_register_runners`."""

    uses_container: ClassVar[bool] = False
    """True when the backend runs `spec.container.image`; `qwex run --image` then applies."""
    accepts_secret_env: ClassVar[bool] = False
    """True when `start` delivers `spec.secret_env` to the command without writing its values
    where others can read them (the run record, a manifest, a container's inspect data).
    Core refuses a job with secret env to a runner that leaves this False."""
    runs_workers: ClassVar[bool] = False
    """True when the backend runs a job's `nodes` workers and `array` tasks (one run,
    `workers/<rank>.log` each); core refuses `--nodes` and `--array` to any other."""
    start_timeout: ClassVar[float] = 30.0
    """Seconds a run may stay unstarted (nothing found, or created but not running) before
    it is recorded `lost`. A backend with a queue in front raises it."""
    probe_every: ClassVar[float] = 0.0
    """Seconds between two probes of the same run by one process, when probing costs a
    round trip (a daemon, an API server); a pending cancel is always probed."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        self.name = name
        self.store = store
        self.config = config
        self._probed: dict[str, float] = {}

    # -- what a backend implements ---------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        """Raise `SpecError` when this backend cannot run `spec`, before any record exists."""

    @abstractmethod
    def start(self, run: Run) -> None:
        """Start the agent for `run` (`self.agent_command(run)`), whose pending record exists.

        Keep what finds the run again: in `run.backend_data` saved with
        `self.store.save(run)` *before* the agent starts (after that, only the agent
        writes the record), or in a file of `self.store.run_dir(run.id)`. Return once
        the agent is on its way; raise `BackendError` with a clear message when it
        cannot start (the run is then recorded `failed` with that message).
        """

    @abstractmethod
    def probe(self, run: Run) -> Probe | None:
        """Look at what `start` started for `run`; None when that cannot be told now
        (the daemon or the API server does not answer): the record then stands."""

    @abstractmethod
    def signal(self, run: Run, signum: int) -> None:
        """Send `signum` to the run's agent. SIGKILL must stop everything of the run at
        once, also what was created but not started. Never raise for a run that is gone."""

    def wait_for_change(self, run: Run, seconds: float) -> None:
        """Wait up to `seconds` for `run` to change while someone follows it. A backend
        that can be woken early (the local runner waits on its child) returns sooner."""
        time.sleep(seconds)

    def resource_notes(self, spec: JobSpec) -> list[str]:
        """One line per resource limit of `spec` this backend cannot enforce here, and why,
        which `qwex run` prints before it starts the run. Default: none."""
        return []

    def describe(self, run: Run) -> str | None:
        """What `start` would create for `run`, as text a user can read or apply (a Job
        manifest, a container's configuration), for `qwex run --dry-run`; None when there is
        nothing to show beyond the agent's command line. Must create nothing."""
        return None

    def prefetch(self) -> None:
        """Several of this backend's runs are about to be brought up to date (`qwex list`):
        fetch in one request per kind what `probe` would ask per run, for the probes that
        follow (a Kubernetes namespace's Jobs, pods and Workloads). Default: nothing."""

    def explain(self, run: Run) -> str | tuple[str, str] | None:
        """A better reason for a final run than its agent could give (`OOMKilled` seen by
        the container runtime), or None. Asked once per run, before `cleanup`.

        `(status, reason)` corrects the status too, when the agent could not tell why it was
        stopped: a batch system's time limit reaches the agent as a plain SIGTERM (recorded
        `cancelled`), which the scheduler knows to be the job's own limit (`failed`)."""
        return None

    def cleanup(self, run: Run) -> None:
        """Release what the backend still holds for a final run (a stopped container...)."""

    # -- what every backend shares ---------------------------------------------

    def agent_command(
        self, run: Run, *, launcher: Sequence[str] = LOCAL_LAUNCHER, run_dir: str | None = None
    ) -> list[str]:
        """The command line that starts the agent for `run`: `launcher` is how to call the
        agent where it runs, `run_dir` where it finds the run folder (default: this one)."""
        return command_line(
            launcher,
            run_dir=run_dir or str(self.store.run_dir(run.id)),
            grace=run.spec.grace_period,
            command=run.spec.command,
        )

    def settings(self, section: str, model: type[Settings]) -> Settings:
        """This backend's validated `[tool.qwex.<section>]` (the model's defaults when unset)."""
        return self.config.section(section, model)

    def refresh(self, run: Run) -> Run:
        """The run's record as it is now; when the agent can no longer write it (gone,
        exited without an end, never started, not stopping on a cancel), record the end."""
        current = self.store.load(run.id)
        if current.is_final or not self._due(run.id):
            return current
        probe = self.probe(current)
        if probe is None:
            return current
        if probe.queued is not None:
            return self._record_queued(run.id)
        current = self.store.load(run.id)  # read after probing: an exited agent wrote its last
        if current.is_final:
            return current
        verdict = self._judge(current, probe, CancelRequest.of(self.store.run_dir(run.id)))
        if verdict.action is Action.KEEP:
            return current
        if verdict.action is Action.STOP:
            self.signal(current, signal.SIGKILL)
        return self.store.record_end(current, verdict.status, verdict.reason)

    def _record_queued(self, run_id: str) -> Run:
        """What was started waits in the backend's queue (`Probe.queued`): the run `queued`
        with the scheduler's words, or, with a cancel asked, out of the queue and
        `cancelled`. Under the run's lock, after a second look: an agent that started
        meanwhile has the record (it does not start while the lock is held)."""
        from qwex_core.agent.record import transition
        from qwex_core.models import Run, RunStatus

        with record_lock(self.store.run_dir(run_id)):
            current = self.store.load(run_id)
            if current.status not in (RunStatus.PENDING, RunStatus.QUEUED):
                return current
            again = self.probe(current)
            if again is None or again.queued is None:
                return current
            cancel = CancelRequest.of(self.store.run_dir(run_id))
            if cancel is not None:  # out of the queue: nothing of it ever ran
                self.signal(current, signal.SIGKILL)
                return self.store.record_end(current, "cancelled", cancel.reason)
            if current.status is RunStatus.QUEUED and current.reason == again.queued:
                return current
            record = current.model_dump(mode="json")
            if current.status is RunStatus.QUEUED:
                record["reason"] = again.queued
            else:
                transition(record, "queued", again.queued)
            queued = Run.model_validate(record)
            self.store.save(queued)
            return queued

    def _judge(self, run: Run, probe: Probe, cancel: CancelRequest | None) -> Verdict:
        """`lifecycle.judge` with this run's age, grace period and this backend's patience."""
        return judge(
            probe,
            age=(datetime.now(UTC) - run.created_at).total_seconds(),
            cancel=cancel,
            grace_period=run.spec.grace_period,
            start_timeout=self.start_timeout,
        )

    def _due(self, run_id: str) -> bool:
        """Whether `refresh` looks again now: `probe_every` has passed since the last look
        in this process, or a cancel waits (always looked at)."""
        now = time.monotonic()
        recently = now - self._probed.get(run_id, -1e9) < self.probe_every
        if recently and CancelRequest.of(self.store.run_dir(run_id)) is None:
            return False
        self._probed[run_id] = now
        return True

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        """Leave the cancel marker (the agent records `cancelled` with its reason), then ask
        the agent to stop: SIGINT when `interrupt` (Ctrl-C), else SIGTERM. Does not wait;
        a run with no live agent is recorded at once, one that ignores the signal is
        killed by a later `refresh` once the grace period is over."""
        request_cancel(self.store.run_dir(run.id), reason)
        probe = self.probe(run)
        if probe is not None and probe.seen is Seen.ALIVE:
            self.signal(run, signal.SIGINT if interrupt else signal.SIGTERM)
            return
        self._probed.pop(run.id, None)
        self.refresh(run)

    def started(self, run: Run) -> None:
        """Called by core right after `start`: no need to probe again at once."""
        self._probed[run.id] = time.monotonic()
