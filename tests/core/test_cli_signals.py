"""Signals to the `qwex` CLI: SIGTERM cancels a foreground run, SIGHUP leaves it going,
Ctrl-C on `logs -f` says one line."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from cli_support import QWEX, Qwex, wait_status


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


def test_sigterm_during_submit_still_cancels(project: Path, qwex: Qwex) -> None:
    # `timeout` sends SIGTERM whenever it likes: before the run exists (then there is none), while
    # it is being submitted, or once it is followed. Whichever it hit, no run is left going.
    for delay in ("0.3", "0.7", "1.2", "2", "3"):
        result = subprocess.run(
            ["timeout", "-s", "TERM", delay, QWEX, "run", "--", "sleep", "300"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 124, result.stderr  # timeout's code: its command timed out
    runs = json.loads(qwex("list", "--json", check=True).stdout)
    assert runs, "no SIGTERM came after the run was created: nothing tested"
    for run in runs:
        rec = wait_status(qwex, run["id"], {"cancelled", "failed", "succeeded", "lost"})
        assert rec["status"] == "cancelled", rec


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
