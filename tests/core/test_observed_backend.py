"""The far-away backend of docs/plugins.md, taken from the guide as written, passes the
conformance suite: core's observed-run contract (`qwex_core.observed`) does the record, the
log copy, `lost` and the cancel for a backend that only observes."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from far_support import far_backend, far_files, far_package, far_root
from qwex_core.jobs import overrides
from qwex_core.models import JobSpec, Run
from qwex_core.plugin.manager import PluginHost
from qwex_core.service import RunService, open_service
from qwex_core.testing import ObservedConformance

__all__ = ["far_backend", "far_package"]  # fixtures, used by name


def test_the_guide_gives_the_whole_backend() -> None:
    assert set(far_files()) == {"qwex_far/runner.py", "qwex_far/plugin.py"}


class TestFarRunner(ObservedConformance):
    backend = "far"
    timeout = 30.0

    @pytest.fixture
    def service(self, qwex_project: Path) -> RunService:
        host = PluginHost(plugins=[("far", importlib.import_module("qwex_far.plugin"))])
        return open_service(qwex_project, host=host, flags=overrides({"backend": "far"}))

    def far_record(self, run: Run) -> dict[str, object]:
        import json

        far = far_root() / run.id / "run.json"
        try:
            data: dict[str, object] = json.loads(far.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        """The far side's machine dies: its agent and the command with it."""
        record = self.far_record(run)
        os.kill(int(str(record["agent_pid"])), signal.SIGKILL)
        os.killpg(int(str(record["pid"])), signal.SIGKILL)

    def failing_job(self, service: RunService) -> JobSpec:
        # An environment bigger than the kernel gives a new program: Popen fails (E2BIG).
        return service.job(["true"], env={"TOO_BIG": "x" * 300_000})

    def queued_job(self, service: RunService) -> JobSpec:
        return service.job(["sh", "-c", "echo never"], labels={"far-queue": "hold"})

    @contextlib.contextmanager
    def far_side_down(self, service: RunService, run: Run) -> Iterator[None]:
        down = far_root() / "down"
        down.touch()
        try:
            yield
        finally:
            down.unlink()

    def still_running(self, service: RunService, run: Run) -> list[str]:
        record = self.far_record(run)
        alive = []
        for what, pid, send in (
            ("far agent", record.get("agent_pid"), os.kill),
            ("command group", record.get("pid"), os.killpg),
        ):
            if pid:
                try:
                    send(int(str(pid)), 0)
                    alive.append(f"{what} {pid}")
                except ProcessLookupError:
                    pass
        return alive
