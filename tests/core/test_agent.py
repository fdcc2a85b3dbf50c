"""The agent (`qwex run --local`) run directly, as it runs inside a container."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import unavailable

AGENT = [sys.executable, "-m", "qwex_core.agent", "run", "--local"]


def record(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def wait_for_text(path: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.02)


def test_output_is_logged_and_passed_through(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [*AGENT, "--run-dir", str(run_dir), "--", "sh", "-c", "echo out; echo err >&2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert (run_dir / "stdout.log").read_text() == "out\n"
    assert (run_dir / "stderr.log").read_text() == "err\n"
    rec = record(run_dir)
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0
    assert [h["status"] for h in rec["history"]] == ["running", "succeeded"]


def test_quiet_only_logs(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "echo", "hi"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout == ""
    assert (tmp_path / "stdout.log").read_text() == "hi\n"


def test_exit_code_and_signal_exit(tmp_path: Path) -> None:
    code = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path / "a"), "--", "sh", "-c", "exit 42"], timeout=30
    )
    assert code.returncode == 42
    assert record(tmp_path / "a")["reason"] == "exit code 42"
    killed = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path / "b"), "--", "sh", "-c", "kill -TERM $$"], timeout=30
    )
    assert killed.returncode == 128 + signal.SIGTERM
    rec = record(tmp_path / "b")
    assert (
        rec["status"] == "failed"
        and rec["signal"] == "SIGTERM"
        and rec["reason"] == "killed by SIGTERM"
    )


def test_single_string_with_spaces_runs_in_sh(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path), "--", "echo a && echo b"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout == "a\nb\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_is_forwarded_to_the_whole_group(tmp_path: Path, signum: int) -> None:
    """The command and its children get the signal; the run ends cancelled."""
    script = "sleep 300 & echo child=$!; wait"
    proc = subprocess.Popen(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", script]
    )
    wait_for_text(tmp_path / "stdout.log", "child=")
    child = int((tmp_path / "stdout.log").read_text().split("child=")[1].split()[0])
    proc.send_signal(signum)
    assert proc.wait(timeout=10) == 128 + signum
    rec = record(tmp_path)
    assert rec["status"] == "cancelled"
    assert rec["reason"] == f"received {signal.Signals(signum).name}"
    assert (
        not Path(f"/proc/{child}").exists()
        or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]
    )


def test_grace_period_then_sigkill(tmp_path: Path) -> None:
    """A command that ignores SIGTERM is killed once the grace period is over."""
    proc = subprocess.Popen(
        [
            *AGENT,
            "--run-dir",
            str(tmp_path),
            "--grace",
            "1",
            "--quiet",
            "--",
            "sh",
            "-c",
            "trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done",
        ]
    )
    wait_for_text(tmp_path / "stdout.log", "ready")
    begun = time.monotonic()
    proc.terminate()
    assert proc.wait(timeout=60) == 137
    # In this order: the SIGTERM reached the command (its trap ran), and the SIGKILL came no
    # sooner than the grace period after it (the agent cannot have sent SIGTERM before
    # `begun`). No upper bound: a loaded machine may take longer.
    assert "got TERM" in (tmp_path / "stdout.log").read_text()
    assert time.monotonic() - begun >= 1
    rec = record(tmp_path)
    assert (rec["status"], rec["signal"], rec["reason"]) == (
        "cancelled",
        "SIGKILL",
        "received SIGTERM",
    ), rec


def test_cancel_marker_gives_the_reason(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", "echo go; sleep 300"]
    )
    wait_for_text(tmp_path / "stdout.log", "go")
    (tmp_path / "cancel").write_text("cancelled by user")
    proc.terminate()
    proc.wait(timeout=10)
    assert record(tmp_path)["reason"] == "cancelled by user"


def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path / "r"), "--", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 126
    assert "permission denied" in record(tmp_path / "r")["reason"]


def test_usage_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [*AGENT, "--bogus", "--", "true"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "unknown agent option --bogus" in result.stderr
    result = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "no command given" in result.stderr


def test_output_survives_a_closed_stdout(tmp_path: Path) -> None:
    """If whoever reads the agent's output goes away, the logs are still complete."""
    proc = subprocess.Popen(
        [
            *AGENT,
            "--run-dir",
            str(tmp_path),
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done",
        ],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.read(10)
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    lines = (tmp_path / "stdout.log").read_text().splitlines()
    assert len(lines) == 2000 and lines[-1] == "line 1999"


def test_reaps_orphans_as_pid_1(tmp_path: Path) -> None:
    """As PID 1 of a PID namespace, the agent reaps orphans re-parented to it: no zombie piles up."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        unavailable("reaping as PID 1 needs root and unshare (util-linux)")
    script = "for i in 1 2 3 4 5; do sh -c 'sleep 0.05 &'; done; sleep 1; grep -l '^[0-9]* ([^)]*) Z' /proc/[0-9]*/stat | wc -l"
    result = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            *AGENT,
            "--run-dir",
            str(tmp_path),
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert record(tmp_path)["agent_pid"] == 1
