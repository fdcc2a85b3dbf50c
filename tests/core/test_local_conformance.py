"""The local runner passes the conformance suite that every backend runs."""

from __future__ import annotations

import os
import signal

from qwex_core.models import JobSpec, Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, processes_in_groups, processes_of_run

ARG_MAX_STRING = 32 * 4096
"""Linux's limit on one string of a new program's environment (MAX_ARG_STRLEN)."""


class TestLocalRunner(RunnerConformance):
    backend = "local"
    timeout = 20.0

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        pid = int((service.store.run_dir(run.id) / "agent.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def failing_job(self, service: RunService) -> JobSpec:
        """An environment the kernel refuses to give a new program (E2BIG): the agent
        cannot be executed, so `start` fails in `Popen`, as it does for a launcher that is
        missing or a working directory that cannot be entered."""
        return self.job(service, ["true"], env={"QWEX_TOO_BIG": "x" * (2 * ARG_MAX_STRING)})

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """The agent's process group (the agent is its leader: `start_new_session`) and the
        command's (the agent starts it in a group of its own), and anything that left them
        but still carries the run's `QWEX_RUN_ID`."""
        groups = {run.pid} if run.pid else set()
        pid_file = service.store.run_dir(run.id) / "agent.pid"
        if pid_file.exists():
            groups.add(int(pid_file.read_text().split()[0]))
        found = processes_in_groups(groups)
        return found + [
            p for p in processes_of_run(run, service.store.run_dir(run.id)) if p not in found
        ]
