"""The `qwex` command line, end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_support import QWEX, TREE, Qwex, assert_gone, pid_in, tree_pids, wait_status


def test_foreground_run_streams_output_and_exits_with_the_code(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--", "sh", "-c", "echo hello; echo oops >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "hello\n"
    assert "oops" in result.stderr and "exit code 3" in result.stderr
    runs = json.loads(qwex("list", "--json", check=True).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "failed" and runs[0]["exit_code"] == 3


def test_seed_form_runs_a_script_through_sh(project: Path, qwex: Qwex) -> None:
    (project / "script.py").write_text("import sys; print('from script', sys.argv[1:])\n")
    result = qwex("run", f"{sys.executable} script.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from script []\n"


def test_command_options_are_not_taken_as_qwex_options(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "sh", "-c", "echo $0 $1", "-d", "--json")
    assert result.returncode == 0 and result.stdout == "-d --json\n"


def test_detach_prints_the_id_and_logs_reattach(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "-d", "--no-trunc", "--", "sh", "-c", "sleep 0.5; echo done-late")
    assert result.returncode == 0
    run_id = result.stdout.strip()
    assert len(run_id) == 36 and result.stderr == ""
    follow = qwex("logs", "-f", run_id[:13])
    assert follow.returncode == 0 and follow.stdout == "done-late\n"
    assert wait_status(qwex, run_id, {"succeeded"})["exit_code"] == 0


def test_logs_tail_and_streams(project: Path, qwex: Qwex) -> None:
    qwex(
        "run",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo out$i; done; echo err1 >&2",
        check=True,
    )
    run_id = json.loads(qwex("list", "--json").stdout)[0]["id"]
    tailed = qwex("logs", run_id, "--tail", "2")  # two lines of both streams together
    assert tailed.stdout == "out5\n" and tailed.stderr == "err1\n"
    assert qwex("logs", run_id, "--tail", "2", "--stream", "stdout").stdout == "out4\nout5\n"
    only_err = qwex("logs", run_id, "--stream", "stderr")
    assert only_err.stdout == "" and only_err.stderr == "err1\n"
    as_json = json.loads(qwex("logs", run_id, "--json").stdout)
    assert as_json == {"stdout": "out1\nout2\nout3\nout4\nout5\n", "stderr": "err1\n"}


def test_list_filters_and_order(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "true", check=True)
    qwex("run", "--", "false")
    ids = [r["id"] for r in json.loads(qwex("list", "--json").stdout)]
    assert ids == sorted(ids, reverse=True) and len(ids) == 2
    failed = json.loads(qwex("list", "--status", "failed", "--json").stdout)
    assert [r["spec"]["command"] for r in failed] == [["false"]]
    assert json.loads(qwex("list", "--backend", "docker", "--json").stdout) == []
    table = qwex("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "STATUS", "BACKEND"] and "failed" in table[1]


def test_status_shows_the_record(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "sh", "-c", "exit 7")
    run_id = json.loads(qwex("list", "--json").stdout)[0]["id"]
    text = qwex("status", run_id[:10]).stdout
    assert "failed" in text and "exit code 7" in text and run_id in text


def test_cancel_stops_the_process_tree(project: Path, qwex: Qwex) -> None:
    run_id = qwex(
        "run", "-d", "--", "sh", "-c", "sleep 300 & echo $! > child.pid; wait", check=True
    ).stdout.strip()
    child = pid_in(project / "child.pid")
    result = qwex("cancel", run_id)
    assert result.returncode == 0 and "cancelled" in result.stdout
    rec = wait_status(qwex, run_id, {"cancelled"})
    assert rec["reason"] == "cancelled by user"
    assert_gone([child])


def test_ctrl_c_cancels_and_says_so(project: Path) -> None:
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", TREE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    pids = tree_pids(project)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "cancelling run" in err
    assert proc.returncode == 128 + signal.SIGINT
    runs = json.loads(
        subprocess.run([QWEX, "list", "--json"], capture_output=True, text=True).stdout
    )
    assert runs[0]["status"] == "cancelled"
    # The whole tree is gone, also the background jobs that SIGINT alone does not end.
    assert_gone(pids)


def test_sigkilled_cli_leaves_the_run_going(project: Path, qwex: Qwex) -> None:
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", "echo ready; sleep 1; echo finished"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.wait()
    run_id = json.loads(qwex("list", "--json").stdout)[0]["id"]
    rec = wait_status(qwex, run_id, {"succeeded", "failed", "lost"})
    assert rec["status"] == "succeeded"
    assert qwex("logs", run_id).stdout == "ready\nfinished\n"


def test_a_killed_agent_is_reported_lost(project: Path, qwex: Qwex) -> None:
    run_id = qwex(
        "run", "-d", "--no-trunc", "--", "sh", "-c", "echo $$ > cmd.pid; sleep 300", check=True
    ).stdout.strip()
    rec = wait_status(qwex, run_id, {"running"})
    command_pid = pid_in(project / "cmd.pid")
    os.kill(rec["agent_pid"], signal.SIGKILL)
    rec = wait_status(qwex, run_id, {"lost"})
    assert "agent" in rec["reason"] and "command was stopped" in rec["reason"]
    assert_gone([command_pid])


def test_errors_are_one_line_without_traceback(project: Path, qwex: Qwex) -> None:
    missing = qwex("status", "0000")
    assert missing.returncode == 1
    assert (
        missing.stderr.startswith("qwex: error: no run matches '0000'")
        and "Traceback" not in missing.stderr
    )
    unknown = qwex("run", "--backend", "nope", "--", "true")
    assert (
        unknown.returncode == 1
        and "unknown backend 'nope'" in unknown.stderr
        and "local" in unknown.stderr
    )
    usage = qwex("run")
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    bad_env = qwex("run", "-e", "=x", "--", "true")
    assert bad_env.returncode == 2 and "=x" in bad_env.stderr
    bad_mem = qwex("run", "--memory", "lots", "--", "true")
    assert (
        bad_mem.returncode == 2 and "memory" in bad_mem.stderr and "Traceback" not in bad_mem.stderr
    )


def test_backends_lists_local_with_its_distribution(project: Path, qwex: Qwex) -> None:
    data = json.loads(qwex("backends", "--json", check=True).stdout)
    local = next(b for b in data["backends"] if b["name"] == "local")
    assert local["distribution"] == "qwex-core" and local["version"] == "0.1.0"
    assert "local" in qwex("backends").stdout


def test_env_and_workdir_flags(project: Path, qwex: Qwex) -> None:
    (project / "sub").mkdir()
    result = qwex(
        "run",
        "-e",
        "GREETING=hi",
        "--workdir",
        str(project / "sub"),
        "--",
        "sh",
        "-c",
        'echo "$GREETING $PWD"',
    )
    assert result.stdout == f"hi {project / 'sub'}\n"


def test_many_runs_started_at_once(project: Path) -> None:
    procs = [
        subprocess.Popen(
            [QWEX, "run", "-d", "--no-trunc", "--", "sh", "-c", f"echo {i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(12)
    ]
    ids = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert len(set(ids)) == 12
    deadline = time.monotonic() + 30
    while True:
        runs = json.loads(
            subprocess.run([QWEX, "list", "--json"], capture_output=True, text=True).stdout
        )
        if len(runs) == 12 and all(r["status"] == "succeeded" for r in runs):
            break
        assert time.monotonic() < deadline, [r["status"] for r in runs]
        time.sleep(0.1)
    outputs = sorted(int((project / ".qwex/runs" / i / "stdout.log").read_text()) for i in ids)
    assert outputs == list(range(12))


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["list", "--help"], ["logs", "--help"]]
)
def test_help_explains(project: Path, qwex: Qwex, args: list[str]) -> None:
    result = qwex(*args)
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_ctrl_c_in_logs_follow_only_detaches(project: Path, qwex: Qwex) -> None:
    run_id = qwex("run", "-d", "--", "sh", "-c", "echo ready; sleep 300", check=True).stdout.strip()
    proc = subprocess.Popen(
        [QWEX, "logs", "-f", run_id], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert "stopped following" in err
    assert wait_status(qwex, run_id, {"running"})["status"] == "running"
    assert qwex("cancel", run_id).returncode == 0
    assert wait_status(qwex, run_id, {"cancelled"})["reason"] == "cancelled by user"


def test_cancel_asked_but_agent_killed_ends_cancelled(project: Path, qwex: Qwex) -> None:
    """If the agent dies before handling a cancel, the run still ends `cancelled`, command stopped."""
    run_id = qwex(
        "run", "-d", "--no-trunc", "--", "sh", "-c", "echo $$ > cmd.pid; sleep 300", check=True
    ).stdout.strip()
    rec = wait_status(qwex, run_id, {"running"})
    command_pid = pid_in(project / "cmd.pid")
    (project / ".qwex" / "runs" / run_id / "cancel").write_text("cancelled by user")
    os.kill(rec["agent_pid"], signal.SIGKILL)
    rec = wait_status(qwex, run_id, {"cancelled", "lost"})
    assert rec["status"] == "cancelled" and rec["reason"].startswith("cancelled by user")
    assert_gone([command_pid])


def test_command_starts_in_the_subdirectory_it_was_run_from(project: Path, qwex: Qwex) -> None:
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    result = qwex("run", "--", "sh", "-c", "pwd", cwd=sub)
    assert result.returncode == 0 and result.stdout == f"{sub}\n"
    assert (project / ".qwex" / "runs").is_dir() and not (sub / ".qwex").exists()


def test_image_on_the_local_backend_is_flagged(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--image", "python:3.11", "--", "true")
    assert result.returncode == 0
    assert "--image is ignored: the local backend runs no container" in result.stderr


def test_dry_run_of_a_local_run_prints_the_agents_command_and_runs_nothing(
    project: Path, qwex: Qwex
) -> None:
    result = qwex("run", "--dry-run", "--", "sh", "-c", "touch made")
    assert result.returncode == 0, result.stderr
    assert (
        "qwex_core.agent.__main__' run --local" in result.stdout and "touch made" in result.stdout
    )
    assert not (project / "made").exists()
    assert qwex("list", "--json", check=True).stdout.strip() == "[]"
