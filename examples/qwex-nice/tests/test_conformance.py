"""qwex's runner conformance suite, run against this plugin."""

import os
import signal

from qwex_core.models import Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance


class TestNiceRunner(RunnerConformance):
    backend = "nice"
    timeout = 20.0

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        pid = int((service.store.run_dir(run.id) / "agent.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
