"""`qwex` in pipes and scripts: closed pipes, `--json`, `-q`, `wait`, `logs -f`'s last line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_support import QWEX, Qwex, wait_status

PIPE_CLOSED = 141


def head_1(*args: str) -> tuple[str, int, str]:
    """Like `qwex ARGS | head -1`: the first line, then the pipe is closed. Returns that line,
    qwex's exit code and its stderr."""
    proc = subprocess.Popen(
        [QWEX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    try:
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return line, code, err


def test_run_into_a_closed_pipe_stops_following_quietly(project: Path, qwex: Qwex) -> None:
    line, code, err = head_1("run", "--", "seq", "1", "2000000")
    assert line == "1\n"
    assert code == PIPE_CLOSED, err
    assert "error" not in err and "Traceback" not in err, err
    run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    # The run is left going (its output goes to the run record) and ends on its own.
    rec = wait_status(qwex, run_id)
    assert rec["status"] == "succeeded" and rec["exit_code"] == 0


def test_logs_into_a_closed_pipe_exit_quietly(project: Path, qwex: Qwex) -> None:
    qwex("run", "-q", "--", "seq", "1", "300000", check=True)
    run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    for args in (["logs", run_id], ["logs", "-f", run_id]):
        line, code, err = head_1(*args)
        assert line == "1\n"
        assert (code, err) == (PIPE_CLOSED, ""), f"qwex {' '.join(args)}: {code} {err}"


def test_list_into_a_closed_pipe_exits_quietly(project: Path, qwex: Qwex) -> None:
    # Records large enough that `list --json` writes far more than a pipe holds (64 KiB): the
    # reader going away after one line really breaks the pipe under qwex's writes.
    words = ["x" * 1000] * 100
    for _ in range(3):
        qwex("run", "-d", "--", "true", *words, check=True)
    assert len(qwex("list", "--json", check=True).stdout) > 4 * 65536
    line, code, err = head_1("list", "--json")
    assert line == "[\n"
    assert (code, err) == (PIPE_CLOSED, ""), f"qwex list --json: {code} {err}"
    assert "error" not in err.lower() and "traceback" not in err.lower()


def test_run_json_prints_one_document_and_the_output_on_stderr(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--json", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    record = json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert record["status"] == "failed" and record["exit_code"] == 3
    assert "out\n" in result.stderr and "err\n" in result.stderr


def test_run_quiet_prints_no_output(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "-q", "--json", "--", "sh", "-c", "echo out; echo err >&2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "succeeded"
    assert "out" not in result.stderr and "err" not in result.stderr
    quiet = qwex("run", "-q", "--", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert quiet.returncode == 5 and quiet.stdout == ""
    assert "out" not in quiet.stderr and "err\n" not in quiet.stderr
    run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    assert qwex("logs", run_id, "--stream", "stdout").stdout == "out\n"


def test_wait_prints_exit_codes_and_exits_with_the_first_non_zero(
    project: Path, qwex: Qwex
) -> None:
    ok = qwex("run", "-d", "--", "sh", "-c", "sleep 0.5", check=True).stdout.strip()
    bad = qwex("run", "-d", "--", "sh", "-c", "sleep 0.5; exit 4", check=True).stdout.strip()
    worse = qwex("run", "-d", "--", "sh", "-c", "exit 7", check=True).stdout.strip()
    result = qwex("wait", ok, bad, worse)
    assert result.stdout == "0\n4\n7\n", result.stderr
    assert result.returncode == 4
    assert wait_status(qwex, bad)["exit_code"] == 4
    assert qwex("wait", ok).returncode == 0
    assert qwex("wait", "no-such-run").returncode == 1


def test_logs_follow_ends_with_one_status_line(project: Path, qwex: Qwex) -> None:
    run_id = qwex(
        "run", "-d", "--", "sh", "-c", "sleep 0.3; echo hi; exit 4", check=True
    ).stdout.strip()
    result = qwex("logs", "-f", run_id)
    assert result.returncode == 0 and result.stdout == "hi\n"
    [line] = result.stderr.splitlines()
    assert line.startswith("qwex: run ") and line.endswith(" finished: failed, exit code 4")
    assert line.split()[2] in run_id  # the short id names the run


def test_run_help_says_stdin_is_not_forwarded(project: Path, qwex: Qwex) -> None:
    help_text = " ".join(qwex("run", "--help", check=True).stdout.split())
    assert "Stdin is not forwarded" in help_text
    # Real input on qwex's stdin (pytest's own stdin is /dev/null, where `cat` ends anyway).
    result = subprocess.run(
        [QWEX, "run", "--", "sh", "-c", "cat; echo end"],
        input="piped-in secret\n",
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "end\n", "the command read what was piped into qwex"
    assert "stdin is not forwarded" in result.stderr
    run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    assert "piped-in" not in qwex("logs", run_id, check=True).stdout
