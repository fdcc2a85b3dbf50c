"""The Slurm runner: a run is one batch job whose batch step is the qwex agent.

The project folder is shared with the compute nodes (as home and project folders are on
most Slurm clusters; here, one machine), so the agent writes the run's record and logs
itself, as the local runner's does. The batch script checks that the node sees the run
folder and exits 97 when it does not: the run is then recorded `lost` with that reason.

What the agent cannot know comes from slurmctld, and core records it: that the job waits
in the queue and why (`Probe.queued`: core writes `queued` with Slurm's reason under the
run's lock, which the batch script waits for before it becomes the agent), that it ended
without the agent recording it (`lost`, with Slurm's state), and Slurm's end state beside
the agent's exit code (`explain`). The backend itself writes no record.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from functools import cached_property

from qwex_core.errors import BackendError, SpecError
from qwex_core.lifecycle import CancelRequest, Probe, Seen
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.ownership import owner_token
from qwex_core.runners.base import Runner

from qwex_slurm import status
from qwex_slurm.commands import Slurm
from qwex_slurm.script import JOB_ID_FILE, SCRIPT_FILE, Facts, sbatch_options, script
from qwex_slurm.settings import SlurmSettings

END_WAIT = 5.0
"""Seconds `explain` waits for slurmctld to move a job whose agent has recorded its end
past RUNNING/COMPLETING (an OOM kill is known to Slurm once the step is reaped)."""


class SlurmRunner(Runner):
    """The qwex agent as the batch step of a Slurm job."""

    start_timeout = 120.0
    """From sbatch to slurmctld knowing the job: a job waiting in the queue is `queued`,
    which never times out."""
    probe_every = 1.0
    """One `scontrol` per second and run at most: slurmctld serves a whole cluster."""

    @cached_property
    def slurm_settings(self) -> SlurmSettings:
        return self.settings("slurm", SlurmSettings)

    @cached_property
    def slurm(self) -> Slurm:
        return Slurm(self.slurm_settings.timeout)

    # -- starting -----------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        workdir = self.store.project_dir / (spec.workdir or ".")
        if not workdir.is_dir():
            raise SpecError(f"workdir {spec.workdir} is not a directory")
        if not Slurm.installed():
            raise SpecError(
                "the slurm backend needs Slurm's client commands (sbatch, scontrol) on this "
                "machine: run qwex on a login node of the cluster"
            )

    def _facts(self, run: Run) -> Facts:
        from qwex_agent.platforms import Platform
        from qwex_agent.provide import provide_agent

        agent = provide_agent(Platform.host(), agent_dir=self.slurm_settings.agent_dir, image=None)
        loader = os.path.basename(str(agent.manifest.get("loader", "")))
        if not loader:
            raise BackendError(f"the agent bundle {agent.path} names no loader (rebuild it)")
        return Facts(
            project_dir=self.store.project_dir.resolve(),
            run_dir=self.store.run_dir(run.id).resolve(),
            agent_dir=agent.path.resolve(),
            loader=loader,
            owner=owner_token(self.store.project_dir) or "",
        )

    def start(self, run: Run) -> None:
        facts = self._facts(run)
        path = facts.run_dir / SCRIPT_FILE
        path.write_text(script(run, facts))
        env = {**os.environ, **run.spec.env, "QWEX_RUN_ID": run.id}
        options = sbatch_options(run, self.slurm_settings, facts)
        job_id = self.slurm.submit(options, str(path), env, str(facts.run_dir))
        (facts.run_dir / JOB_ID_FILE).write_text(job_id + "\n")

    def describe(self, run: Run) -> str | None:
        facts = self._facts(run)
        options = sbatch_options(run, self.slurm_settings, facts)
        return f"# sbatch {' '.join(options)} {SCRIPT_FILE}\n{script(run, facts)}"

    # -- looking ------------------------------------------------------------------

    def job_id(self, run: Run) -> str | None:
        """The run's Slurm job id, once sbatch gave it."""
        try:
            text = (self.store.run_dir(run.id) / JOB_ID_FILE).read_text().strip()
        except OSError:
            return None
        return text if text.isdigit() else None

    def job(self, job_id: str) -> dict[str, str] | None:
        """The job as slurmctld (else accounting) shows it; None when both forgot it."""
        return self.slurm.job(job_id) or self.slurm.accounted(job_id)

    def probe(self, run: Run) -> Probe | None:
        job_id = self.job_id(run)
        if job_id is None:
            return Probe(Seen.NOTHING, "its Slurm job")
        try:
            seen = status.probe(job_id, self.job(job_id))
        except BackendError:
            return None  # slurmctld does not answer: the record stands
        if seen.seen in (Seen.EXITED, Seen.GONE) and _agent_alive_here(run):
            # Slurm gave the job up (NODE_FAIL: slurmd stopped answering) but its agent still
            # runs, on this very machine: it records the end itself, and `explain` adds
            # Slurm's words to it.
            return Probe(Seen.ALIVE, f"its agent (pid {run.agent_pid}) on {run.host}")
        return seen

    # -- signalling -----------------------------------------------------------------

    def signal(self, run: Run, signum: int) -> None:
        """SIGKILL: every process of the job at once, and out of the queue; any other
        signal to the batch step alone, the agent, which passes it to the command."""
        job_id = self.job_id(run)
        if job_id is None:
            return
        with contextlib.suppress(BackendError):
            if signum == signal.SIGKILL:
                self.slurm.signal(job_id, "KILL", batch_only=False)
                self.slurm.cancel(job_id)
            else:
                self.slurm.signal(job_id, signal.Signals(signum).name, batch_only=True)

    # -- the end --------------------------------------------------------------------

    def explain(self, run: Run) -> str | tuple[str, str] | None:
        """Slurm's end state and reason beside the agent's own (TIMEOUT, OUT_OF_MEMORY,
        NODE_FAIL, PREEMPTED, CANCELLED outside qwex); None when Slurm adds nothing. A job
        Slurm stopped at a limit is `failed`: its SIGTERM reached the agent as a cancel."""
        job_id = self.job_id(run)
        if job_id is None:
            return None
        # A command that succeeded has nothing to wait for: one look, for a job Slurm gave
        # up while it ran on (NODE_FAIL).
        deadline = time.monotonic() + (0 if run.status is RunStatus.SUCCEEDED else END_WAIT)
        while True:
            job = self.job(job_id)
            state = "" if job is None else status.state_of(job)
            if job is None or state not in status.ALIVE or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if job is None or state in status.NOT_EXPLAINED or state in status.ALIVE:
            return None
        if state == "CANCELLED" and CancelRequest.of(self.store.run_dir(run.id)) is not None:
            return None  # qwex's own cancel: the agent's reason says it
        words = status.end_words(job)
        reason = run.reason or ""
        if words in reason:
            return None
        better = f"{words} (Slurm job {job_id}); the agent: {reason}" if reason else words
        if state in status.LIMITS and run.status is RunStatus.CANCELLED:
            return "failed", better
        return better


def _agent_alive_here(run: Run) -> bool:
    """Whether the run's agent is a live process of this machine (the node is this machine)."""
    if not run.agent_pid or run.host != os.uname().nodename:
        return False
    try:
        os.kill(run.agent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
