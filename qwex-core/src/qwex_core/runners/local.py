"""The local runner: the agent as a detached process on this machine.

The agent starts in a new session, so it survives the CLI (SIGKILL included)
and Ctrl-C in the terminal reaches only the CLI, which then cancels the run
on purpose. `agent.pid` in the run folder (pid and kernel start time) lets
any other qwex process find the agent, tell whether it is alive, and signal it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from qwex_core.agent.record import AGENT_PID_FILE, cancel_reason, request_cancel
from qwex_core.errors import BackendError
from qwex_core.models import Run, RunStatus
from qwex_core.runners import procs
from qwex_core.runners.base import Runner

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.store import RunStore

NEVER_STARTED_AFTER = 30.0
"""Seconds after which a pending run with no agent is declared lost."""


class LocalRunner(Runner):
    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def agent_command(self, run: Run) -> list[str]:
        """The command line that starts the agent; subclasses may wrap it (`nice`, `taskset`...)."""
        return [
            sys.executable,
            "-m",
            "qwex_core.agent",
            "run",
            "--local",
            "--run-dir",
            str(self.store.run_dir(run.id)),
            "--quiet",
            "--grace",
            str(run.spec.grace_period),
            "--",
            *run.spec.command,
        ]

    def start(self, run: Run) -> None:
        run_dir = self.store.run_dir(run.id)
        argv = self.agent_command(run)
        env = {**os.environ, **run.spec.env, "QWEX_RUN_ID": run.id}
        workdir = run.spec.workdir or str(self.store.project_dir)
        with open(run_dir / "agent.log", "ab") as agent_log:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=agent_log,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BackendError(
                    f"cannot start the agent in {workdir}: {exc.strerror or exc}"
                ) from None
        self._children[run.id] = proc
        started = procs.start_time(proc.pid)
        (run_dir / AGENT_PID_FILE).write_text(f"{proc.pid} {started or 0}\n")

    def _agent(self, run: Run) -> tuple[int, int | None] | None:
        try:
            pid, started = (self.store.run_dir(run.id) / AGENT_PID_FILE).read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid), int(started)

    def _agent_alive(self, run: Run) -> bool:
        child = self._children.get(run.id)
        if child is not None:
            return child.poll() is None
        agent = self._agent(run)
        return agent is not None and procs.is_running(*agent)

    def refresh(self, run: Run) -> Run:
        current = self.store.load(run.id)
        if current.is_final or self._agent_alive(current):
            return current
        if self._agent(current) is None:
            age = (datetime.now(UTC) - current.created_at).total_seconds()
            if age < NEVER_STARTED_AFTER:
                return current
            return self._mark_lost(current, "the agent never started")
        current = self.store.load(run.id)  # it may have finished between the two reads
        if current.is_final:
            return current
        pid = self._agent(current)
        return self._mark_lost(
            current, f"the agent (pid {pid[0] if pid else '?'}) ended without a final state"
        )

    def _mark_lost(self, run: Run, reason: str) -> Run:
        """Record `lost` (or `cancelled`, when that was asked for: the agent may have been
        stopped before it could handle the signal), stopping whatever it left running."""
        if run.pid is not None and procs.start_time(run.pid) is not None:
            procs.kill_group(run.pid)
            reason += "; its command was stopped"
        asked = cancel_reason(self.store.run_dir(run.id))
        if asked is not None:
            return self.store.record_end(run, RunStatus.CANCELLED, asked)
        return self.store.record_end(run, RunStatus.LOST, reason)

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        request_cancel(self.store.run_dir(run.id), reason)
        agent = self._agent(run)
        signum = signal.SIGINT if interrupt else signal.SIGTERM
        if agent is not None and procs.is_running(*agent):
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent[0], signum)
        else:
            self.refresh(run)  # no agent left to ask: the record turns lost

    def pause(self, run: Run, seconds: float) -> None:
        child = self._children.get(run.id)
        if child is None:
            time.sleep(seconds)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=seconds)

    def cleanup(self, run: Run) -> None:
        child = self._children.pop(run.id, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
