"""Signals to the `qwex` CLI: SIGTERM cancels a foreground run, SIGHUP leaves it going,
Ctrl-C on `logs -f` says one line."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cli_support import QWEX, TREE, Qwex, assert_gone, tree_pids, wait_status


def started(args: list[str]) -> subprocess.Popen[str]:
    """`qwex ARGS` whose command printed `ready` first."""
    proc = subprocess.Popen(
        [QWEX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", "the command did not start"
    return proc


def latest(qwex: Qwex) -> str:
    return str(json.loads(qwex("list", "--json", check=True).stdout)[0]["id"])


def test_sigterm_cancels_a_foreground_run_and_exits_143(project: Path, qwex: Qwex) -> None:
    proc = started(["run", "--", "sh", "-c", "echo ready; sleep 300"])
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "cancelling run" in err
    rec = wait_status(qwex, latest(qwex), {"cancelled", "failed", "succeeded", "lost"})
    assert rec["status"] == "cancelled", rec


PAUSED_PLUGIN = """
import os, time
from pathlib import Path

from qwex_core.plugin import hookimpl
from qwex_core.runners.local import LocalRunner


class PausedRunner(LocalRunner):
    \"\"\"The local runner, holding `start` open once the agent is started until told to go.\"\"\"

    def start(self, run):
        super().start(run)
        gate = Path(os.environ["QWEX_TEST_GATE"])
        (gate / "started").touch()
        while not (gate / "go").exists():
            time.sleep(0.01)


@hookimpl
def qwex_register_runners(register):
    register("paused", "paused_plugin:PausedRunner", description="local, start held open")
"""


def test_sigterm_during_submit_still_cancels(project: Path, qwex: Qwex, tmp_path: Path) -> None:
    # SIGTERM lands while the backend is starting the run (its agent already going): the CLI
    # holds it back until the start is done, then cancels the run it started.
    plugin_dir, gate = tmp_path / "plugin", tmp_path / "gate"
    plugin_dir.mkdir()
    gate.mkdir()
    (plugin_dir / "paused_plugin.py").write_text(PAUSED_PLUGIN)
    env = {
        **os.environ,
        "QWEX_PLUGINS": "paused_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "QWEX_TEST_GATE": str(gate),
    }
    proc = subprocess.Popen(
        [QWEX, "run", "-b", "paused", "--", "sh", "-c", TREE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    wait_for(lambda: (gate / "started").exists(), "the backend's start")
    pids = tree_pids(project)  # the command is running: the run exists and is going
    proc.send_signal(signal.SIGTERM)
    (gate / "go").touch()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "cancelling run" in err
    rec = wait_status(qwex, latest(qwex))
    assert rec["status"] == "cancelled", rec
    assert_gone(pids)


def test_sigterm_right_after_submit_still_cancels(project: Path, qwex: Qwex) -> None:
    # SIGTERM lands once the run is submitted, before the CLI follows it: here while its first
    # line to stderr is blocked on a full pipe (the test filled it). The run must not be left
    # going with nobody to cancel it.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    with contextlib.suppress(BlockingIOError):
        while True:
            os.write(write_end, b"f" * 4096)
    os.set_blocking(write_end, True)
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", TREE],
        stdin=subprocess.DEVNULL,  # no "stdin is not forwarded" note before the submit
        stdout=subprocess.PIPE,
        stderr=write_end,
    )
    os.close(write_end)
    try:
        wait_for(lambda: writing_to_stderr(proc.pid), "qwex blocked writing its first note")
        [run] = json.loads(qwex("list", "--json", check=True).stdout)
        pids = tree_pids(project)
        proc.send_signal(signal.SIGTERM)
        with os.fdopen(read_end, "rb") as reader:  # let it write again, and read what it says
            err = reader.read().decode().lstrip("f")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rec = wait_status(qwex, run["id"])
    assert rec["status"] == "cancelled", rec
    assert_gone(pids)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "cancelling run" in err, err


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"no sign of {what} after {timeout}s"
        time.sleep(0.01)


WRITE = {"x86_64": 1, "aarch64": 64}[platform.machine()]


def writing_to_stderr(pid: int) -> bool:
    """Whether process `pid` is blocked in a write(2) to its fd 2 (/proc/PID/syscall)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return len(fields) > 1 and fields[0] == str(WRITE) and int(fields[1], 16) == 2


def test_sighup_leaves_the_run_going(project: Path, qwex: Qwex) -> None:
    proc = started(["run", "--", "sh", "-c", "echo ready; sleep 1; echo finished"])
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGHUP
    run_id = latest(qwex)
    rec = wait_status(qwex, run_id, {"succeeded", "failed", "cancelled", "lost"})
    assert rec["status"] == "succeeded"
    assert qwex("logs", run_id).stdout == "ready\nfinished\n"


def test_ctrl_c_on_logs_follow_prints_one_line(project: Path, qwex: Qwex) -> None:
    run_id = qwex("run", "-d", "--", "sh", "-c", "echo ready; sleep 300", check=True).stdout.strip()
    proc = started(["logs", "-f", run_id])
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "stopped following" in err, err
    assert wait_status(qwex, run_id, {"running"})["status"] == "running"
    qwex("cancel", run_id, check=True)
