"""The local runner passes the conformance suite that every backend runs."""

from __future__ import annotations

import os
import signal

from qwex_core.models import Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance


class TestLocalRunner(RunnerConformance):
    backend = "local"
    timeout = 20.0

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        pid = int((service.store.run_dir(run.id) / "agent.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
