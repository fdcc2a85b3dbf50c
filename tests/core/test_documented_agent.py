"""The agent's promises in docs/runs.md ("The agent") that no other test checked: what the
command leaves in its process group dies with it, SIGHUP is forwarded, a second signal
kills at once. Run as containers run it: `qwex run --local` on real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

AGENT = [sys.executable, "-m", "qwex_core.agent", "run", "--local"]


def record(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    return data


def logged(path: Path, text: str, timeout: float = 20) -> str:
    """The log once `text` is in it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.02)
    return path.read_text()


def number_after(text: str, key: str) -> int:
    return int(text.split(f"{key}=")[1].split()[0])


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone(pid: int, timeout: float = 20) -> bool:
    """True once `pid` is dead (SIGKILL is delivered asynchronously: wait for the event)."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_leftovers(run_dir: Path) -> None:
    """After a failed test: kill the command's group, so that nothing outlives the test."""
    import contextlib

    with contextlib.suppress(OSError, ValueError, KeyError):
        pid = int(record(run_dir)["pid"])
        if b"echo ready" in Path(f"/proc/{pid}/cmdline").read_bytes():  # still our command
            os.killpg(pid, signal.SIGKILL)


def test_what_the_command_left_in_its_group_is_killed_after_a_normal_exit(
    tmp_path: Path,
) -> None:
    """`sh` starts a background `sleep` in its group and exits 0: the run succeeds, and the
    `sleep` does not outlive it ("when the command exits, kills whatever it left in its
    group")."""
    script = "sleep 300 >/dev/null 2>&1 & echo left=$!; exit 0"
    result = subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", script], timeout=60
    )
    assert result.returncode == 0
    assert record(tmp_path)["status"] == "succeeded"
    left = number_after((tmp_path / "stdout.log").read_text(), "left")
    try:
        assert gone(left), f"the command's background process {left} outlived the run"
    finally:
        if alive(left):
            os.kill(left, signal.SIGKILL)


def test_a_process_that_left_the_group_is_not_the_agents_to_kill(tmp_path: Path) -> None:
    """The kill is aimed at the command's group, not at everything: a process the command
    put in a session of its own (a deliberate daemon) is left alone."""
    # the command exits only once the daemon is in its own session (field 6 of its stat)
    script = (
        "setsid sleep 300 >/dev/null 2>&1 & d=$!; "
        'while [ "$(cut -d" " -f6 /proc/$d/stat)" != "$d" ]; do sleep 0.01; done; '
        "echo left=$d; exit 0"
    )
    subprocess.run(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", script],
        timeout=60,
        check=True,
    )
    left = number_after((tmp_path / "stdout.log").read_text(), "left")
    try:
        assert alive(left)
    finally:
        os.kill(left, signal.SIGKILL)


def test_sighup_is_forwarded_to_the_group(tmp_path: Path) -> None:
    """SIGHUP (the terminal closed) reaches the command and what it started; the run ends
    cancelled with the signal named, and the agent exits 128+1."""
    script = "sleep 300 & echo child=$!; echo ready; wait"
    proc = subprocess.Popen(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", script]
    )
    child = number_after(logged(tmp_path / "stdout.log", "ready"), "child")
    proc.send_signal(signal.SIGHUP)
    try:
        assert proc.wait(timeout=60) == 128 + signal.SIGHUP
    finally:
        kill_leftovers(tmp_path)
    rec = record(tmp_path)
    assert (rec["status"], rec["reason"]) == ("cancelled", "received SIGHUP")
    assert gone(child)


def test_the_command_sees_the_sighup(tmp_path: Path) -> None:
    """Forwarded, not only acted on: a command that traps SIGHUP runs its handler."""
    script = "trap 'echo got-HUP; exit 7' HUP; echo ready; while :; do sleep 0.1; done"
    proc = subprocess.Popen(
        [*AGENT, "--run-dir", str(tmp_path), "--quiet", "--", "sh", "-c", script]
    )
    logged(tmp_path / "stdout.log", "ready")
    proc.send_signal(signal.SIGHUP)
    try:
        assert proc.wait(timeout=60) == 7
    finally:
        kill_leftovers(tmp_path)
    assert "got-HUP" in (tmp_path / "stdout.log").read_text()


def test_a_second_signal_kills_at_once(tmp_path: Path) -> None:
    """A command that ignores SIGTERM has a grace period far longer than this test's timeout;
    once it has seen the first SIGTERM, a second one SIGKILLs the group."""
    script = "trap 'echo got-TERM' TERM; echo ready; while :; do sleep 0.1; done"
    proc = subprocess.Popen(
        [
            *AGENT,
            "--run-dir",
            str(tmp_path),
            "--grace",
            "3600",
            "--quiet",
            "--",
            "sh",
            "-c",
            script,
        ]
    )
    logged(tmp_path / "stdout.log", "ready")
    proc.send_signal(signal.SIGTERM)
    logged(tmp_path / "stdout.log", "got-TERM")
    assert proc.poll() is None, "the first SIGTERM should leave the grace period running"
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=60) == 128 + signal.SIGKILL
    finally:
        proc.kill()
        kill_leftovers(tmp_path)
    rec = record(tmp_path)
    assert (rec["status"], rec["signal"]) == ("cancelled", "SIGKILL")
