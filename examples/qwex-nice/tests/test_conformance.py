"""qwex's runner conformance suite, run against this plugin."""

import os
import signal

from qwex_core.models import JobSpec, Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance


class TestNiceRunner(RunnerConformance):
    backend = "nice"
    timeout = 20.0

    def failing_job(self, service: RunService) -> JobSpec:
        """An environment string longer than Linux lets a new program have (MAX_ARG_STRLEN,
        32 pages): `nice` cannot be executed, so `start` fails."""
        return self.job(service, ["true"], env={"QWEX_TOO_BIG": "x" * (64 * 4096)})

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        pid = int((service.store.run_dir(run.id) / "agent.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
