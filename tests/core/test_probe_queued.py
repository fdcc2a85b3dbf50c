"""`Probe.queued`: a runner whose agent writes the record says its start waits in a queue,
and core records `queued` with the scheduler's words (never `lost` for a slow start), and
a cancel takes it out of the queue."""

from __future__ import annotations

import signal
import types
from pathlib import Path

from qwex_core.jobs import overrides
from qwex_core.lifecycle import Probe, Seen
from qwex_core.models import Run
from qwex_core.plugin import hookimpl
from qwex_core.plugin.hookspecs import RegisterRunner
from qwex_core.runners.base import Runner
from qwex_core.service import RunService, open_service


class HeldRunner(Runner):
    """Its start is held in a queue (a file in the run folder says why) until cancelled."""

    start_timeout = 0.0  # a queued run must not be taken for one that never started
    signals: list[int] = []

    def start(self, run: Run) -> None:
        (self.store.run_dir(run.id) / "held").write_text("Priority")

    def probe(self, run: Run) -> Probe | None:
        held = self.store.run_dir(run.id) / "held"
        if held.exists():
            return Probe(Seen.STARTING, "its queued job", queued=f"waits: {held.read_text()}")
        return Probe(Seen.NOTHING, "its queued job")

    def signal(self, run: Run, signum: int) -> None:
        self.signals.append(signum)
        (self.store.run_dir(run.id) / "held").unlink(missing_ok=True)


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register("held", HeldRunner)


def service(project: Path) -> RunService:
    from qwex_core.plugin.manager import PluginHost

    plugin = types.ModuleType("held_plugin")
    plugin.qwex_register_runners = qwex_register_runners  # type: ignore[attr-defined]
    host = PluginHost(plugins=[("held", plugin)])
    return open_service(project, host=host, flags=overrides({"backend": "held"}))


def test_a_held_start_is_queued_with_the_schedulers_words(qwex_project: Path) -> None:
    svc = service(qwex_project)
    run = svc.submit(svc.job(["true"]))
    seen = svc.get(run.id)
    assert (seen.status.value, seen.reason) == ("queued", "waits: Priority")
    (svc.store.run_dir(run.id) / "held").write_text("Resources")
    svc.runner("held")._probed.clear()
    seen = svc.get(run.id)
    assert (seen.status.value, seen.reason) == ("queued", "waits: Resources")
    assert [h.status.value for h in seen.history] == ["pending", "queued"]


def test_cancelling_a_queued_start_takes_it_out_of_the_queue(qwex_project: Path) -> None:
    svc = service(qwex_project)
    HeldRunner.signals.clear()
    run = svc.submit(svc.job(["true"]))
    assert svc.get(run.id).status.value == "queued"
    ended = svc.cancel(svc.get(run.id))
    assert (ended.status.value, ended.reason) == ("cancelled", "cancelled by user")
    assert ended.started_at is None
    assert HeldRunner.signals == [signal.SIGKILL]
