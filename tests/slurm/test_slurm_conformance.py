"""The runner conformance suite on the real slurmctld: every run is an sbatch job."""

from __future__ import annotations

import os
import signal

import pytest
from qwex_core.models import JobSpec, Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance
from qwex_core.testing.processes import processes_of_run
from qwex_slurm.script import JOB_ID_FILE
from qwex_slurm.status import ALIVE, WAITING
from slurm_support import job_state

pytestmark = pytest.mark.usefixtures("slurm_cluster")


class TestSlurmRunner(RunnerConformance):
    backend = "slurm"
    timeout = 60.0

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        record = service.store.load(run.id)
        assert record.agent_pid, "the agent recorded no pid"
        os.kill(record.agent_pid, signal.SIGKILL)

    def failing_job(self, service: RunService) -> JobSpec:
        # The node has no GPU: sbatch refuses the job (Invalid generic resource).
        return service.job(["true"], resources={"gpu": 1})

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """The run's processes on this machine (the node), and its job while Slurm holds
        it waiting or running."""
        left = processes_of_run(run, service.store.run_dir(run.id))
        path = service.store.run_dir(run.id) / JOB_ID_FILE
        if path.is_file():
            job = path.read_text().strip()
            state = job_state(job)
            if state in ALIVE | WAITING:
                left.append(f"Slurm job {job} ({state})")
        return left
