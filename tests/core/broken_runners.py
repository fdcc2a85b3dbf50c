"""Runners broken on purpose, each the way a backend author could get one wrong, and the
conformance suite set on each. Not a test module: `test_conformance_rejects.py` runs this
file in a pytest of its own and reads which case failed for which runner.

`TestControl` runs with them: the same suite, hooks and timeout on the local runner, which
works. What a broken runner leaves running is killed after each case.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import test_local_conformance
from qwex_core.agent.record import transition, write_record
from qwex_core.agent.supervisor import shell_form
from qwex_core.jobs import overrides
from qwex_core.lifecycle import Probe, Seen
from qwex_core.models import Run
from qwex_core.plugin import hookimpl
from qwex_core.plugin.hookspecs import RegisterRunner
from qwex_core.plugin.manager import PluginHost
from qwex_core.runners.base import Runner
from qwex_core.runners.local import AGENT_PID_FILE, LocalRunner
from qwex_core.service import RunService, open_service


class StartsNothing(Runner):
    """`start` returns as if the agent were on its way, and starts nothing."""

    start_timeout = 1.0
    """Its runs are `lost` after a second, so the suite's cases fail at once, not in 30 s."""

    def start(self, run: Run) -> None:
        pass

    def probe(self, run: Run) -> Probe:
        return Probe(Seen.NOTHING)

    def signal(self, run: Run, signum: int) -> None:
        pass


class IgnoresCancel(LocalRunner):
    """Runs the agent, but neither a cancel nor a signal reaches anything."""

    def signal(self, run: Run, signum: int) -> None:
        pass

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        pass


class NeverRecordsEnd(LocalRunner):
    """Runs the command itself instead of the agent: it records the run `running`, the
    command writes the logs, and nobody records how it ended."""

    def start(self, run: Run) -> None:
        run_dir = self.store.run_dir(run.id)
        env = {**os.environ, **run.spec.env, **run.spec.secret_env, "QWEX_RUN_ID": run.id}
        with (
            open(self.store.log_path(run.id, "stdout"), "ab") as out,
            open(self.store.log_path(run.id, "stderr"), "ab") as err,
        ):
            proc = subprocess.Popen(
                shell_form(run.spec.command),
                cwd=self.store.project_dir / (run.spec.workdir or "."),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self._children[run.id] = proc
        (run_dir / AGENT_PID_FILE).write_text(f"{proc.pid} 0\n")
        record = run.model_dump(mode="json")
        record.update(pid=proc.pid, host=os.uname().nodename)
        transition(record, "running")
        write_record(run_dir, record)


class LyingProbe(LocalRunner):
    """Runs the agent, but its probe says nothing was started, whatever runs."""

    def probe(self, run: Run) -> Probe:
        return Probe(Seen.NOTHING)


BROKEN: dict[str, type[Runner]] = {
    "starts-nothing": StartsNothing,
    "ignores-cancel": IgnoresCancel,
    "never-records-end": NeverRecordsEnd,
    "lying-probe": LyingProbe,
}


class BrokenRunners:
    """The plugin that registers them."""

    @hookimpl
    def qwex_register_runners(self, register: RegisterRunner) -> None:
        for name, cls in BROKEN.items():
            register(name, cls, description=cls.__doc__ or "")


class BrokenConformance(test_local_conformance.TestLocalRunner):
    """The local runner's suite (its hooks look at processes, not at the runner) on a
    broken runner."""

    backend: ClassVar[str]

    @pytest.fixture
    def service(self, qwex_project: Path) -> Iterator[RunService]:
        host = PluginHost(plugins=[("broken-runners", BrokenRunners())])
        service = open_service(qwex_project, host=host, flags=overrides({"backend": self.backend}))
        yield service
        for run_id in service.store.ids():  # what the broken runner left running
            pid_file = service.store.run_dir(run_id) / AGENT_PID_FILE
            groups = [service.store.load(run_id).pid]
            with contextlib.suppress(OSError, ValueError):
                groups.append(int(pid_file.read_text().split()[0]))
            for group in filter(None, groups):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)


class TestControl(BrokenConformance):
    backend = "local"


class TestStartsNothing(BrokenConformance):
    backend = "starts-nothing"


class TestIgnoresCancel(BrokenConformance):
    backend = "ignores-cancel"


class TestNeverRecordsEnd(BrokenConformance):
    backend = "never-records-end"


class TestLyingProbe(BrokenConformance):
    backend = "lying-probe"


class TestBlindLook(BrokenConformance):
    """The working local runner, with a `still_running` that never sees anything: the suite
    must not take "nothing seen" for "nothing left"."""

    backend = "local"

    def still_running(self, service: RunService, run: Run) -> list[str]:
        return []
