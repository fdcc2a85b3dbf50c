"""A foreground local run sees its agent's end when it happens, not at the next poll.

`subprocess.Popen.wait(timeout)` polls: it sleeps in steps that grow to 50 ms, so the end of
a run's agent was seen up to 50 ms late (a `true` half a step, a longer command up to a whole
one). The local runner waits on a pidfd of its child instead, which the kernel makes readable
the moment the child exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from qwex_core.runners.local import LocalRunner
from qwex_core.service import open_service


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"polled: time.sleep({seconds})")


@pytest.fixture
def runner(tmp_path: Path) -> LocalRunner:
    (tmp_path / "qwex.toml").write_text("")
    return cast(LocalRunner, open_service(tmp_path).runner("local"))


def test_waiting_on_the_agent_wakes_at_its_exit_without_polling(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    run: Any = SimpleNamespace(id="r1")
    runner._children["r1"] = child
    monkeypatch.setattr(time, "sleep", _no_sleep)
    runner.wait_for_change(run, 30.0)
    assert child.returncode == 0  # woken by the exit, long before the 30 s, and reaped


def test_waiting_on_an_agent_already_reaped_returns_at_once(
    runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    run: Any = SimpleNamespace(id="r2")
    runner._children["r2"] = child
    monkeypatch.setattr(time, "sleep", _no_sleep)

    def no_lookup(pid: int, flags: int = 0) -> int:
        raise AssertionError(f"pid {pid} looked up after its process was reaped")

    monkeypatch.setattr(os, "pidfd_open", no_lookup)
    runner.wait_for_change(run, 30.0)  # its pid may be another process's by now: not looked up
    assert child.returncode == 0


def test_a_running_agent_is_waited_for_as_long_as_asked(runner: LocalRunner) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    run: Any = SimpleNamespace(id="r3")
    runner._children["r3"] = child
    try:
        runner.wait_for_change(run, 0.2)
        assert child.returncode is None
    finally:
        child.kill()
        child.wait()
