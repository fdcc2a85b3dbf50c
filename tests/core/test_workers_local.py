"""`--nodes` and `--array` on the local backend: N processes here with a loopback
rendezvous (the same script as on the cluster), one run with each worker's state and log,
the first failed worker stopping the others and named, an array under its limit."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from workers_support import ALLREDUCE, TASK, most_at_once

Qwex = Callable[..., CompletedProcess[str]]


def last_id(qwex: Qwex) -> str:
    return str(json.loads(qwex("list", "--json", check=True).stdout)[0]["id"])


def test_two_workers_all_reduce_over_loopback(project: Path, qwex: Qwex) -> None:
    (project / "allreduce.py").write_text(ALLREDUCE)
    result = qwex("run", "--nodes", "2", "--", sys.executable, "allreduce.py")
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines == ["[0] rank 0 of 2: sum 3 (node rank 0)", "[1] rank 1 of 2: sum 3 (node rank 1)"]
    run_id = last_id(qwex)
    one = qwex("logs", "--rank", "1", run_id, check=True)
    assert one.stdout == "rank 1 of 2: sum 3 (node rank 1)\n"
    status = qwex("status", run_id, check=True).stdout
    assert "worker     rank 0: succeeded, exit code 0\n" in status
    assert "worker     rank 1: succeeded, exit code 0\n" in status


def test_a_failed_worker_stops_the_others_and_is_named(project: Path, qwex: Qwex) -> None:
    script = 'echo up $RANK; if [ "$RANK" = 1 ]; then exit 3; fi; sleep 60'
    began = time.monotonic()
    result = qwex("run", "--nodes", "3", "--", "sh", "-c", script)
    assert time.monotonic() - began < 30  # not the others' 60 s
    assert result.returncode == 3
    reason = "worker 1 failed: exit code 3; the other workers were stopped"
    assert reason in result.stderr
    run = json.loads(qwex("status", "--json", last_id(qwex), check=True).stdout)
    assert (run["status"], run["reason"]) == ("failed", reason)
    status = qwex("status", run["id"], check=True).stdout
    assert "rank 0: stopped" in status and "rank 2: stopped" in status
    assert "rank 1: failed, exit code 3\n" in status
    rows = run["backend_data"]["workers"]  # where a Kubernetes run keeps them too
    assert [(r["rank"], r["state"], r["exit_code"]) for r in rows] == [
        (0, "stopped", 143),
        (1, "failed", 3),
        (2, "stopped", 143),
    ]


def test_an_array_of_20_runs_at_most_3_at_once(project: Path, qwex: Qwex) -> None:
    (project / "task.py").write_text(TASK)
    result = qwex(
        "run", "--array", "0-19%3", "-e", "FAIL=7", "--", sys.executable, "task.py", timeout=120
    )
    assert result.returncode == 4
    peak, ended = most_at_once(result.stdout)
    assert ended == set(range(20))
    assert peak == 3  # the limit, and used
    run = json.loads(qwex("status", "--json", last_id(qwex), check=True).stdout)
    assert run["reason"] == "1 of 20 tasks failed (7); task 7: exit code 4"
    assert qwex("logs", "--rank", "7", run["id"], check=True).stdout.startswith("start 7 ")


def test_bad_worker_options_are_refused_in_a_line(project: Path, qwex: Qwex) -> None:
    bad = qwex("run", "--array", "9-3", "--", "true")
    assert bad.returncode == 2 and "3 comes before 9" in bad.stderr
    both = qwex("run", "--nodes", "2", "--array", "0-3", "--", "true")
    assert both.returncode != 0 and "--nodes and --array do not go together" in both.stderr
    assert "Traceback" not in both.stderr


def test_cancel_stops_every_worker_and_what_it_started(project: Path, qwex: Qwex) -> None:
    """Workers that ignore SIGTERM, each with a child: the cancel's SIGKILL after the grace
    period reaches them all (they are in the agent's process group)."""
    from qwex_core.models import Run
    from qwex_core.testing.processes import processes_of_run

    script = 'trap "" TERM; echo up; sleep 300 & wait'
    run_id = qwex(
        "run",
        "-d",
        "--no-trunc",
        "--grace-period",
        "1",
        "--nodes",
        "3",
        "--",
        "sh",
        "-c",
        script,
        check=True,
    ).stdout.strip()
    run_dir = project / ".qwex" / "runs" / run_id
    deadline = time.monotonic() + 30
    while (run_dir / "stdout.log").read_bytes().count(b"up\n") < 3:
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.1)
    run = Run.model_validate_json((run_dir / "run.json").read_text())
    assert len(processes_of_run(run, run_dir)) >= 6  # 3 shells, 3 sleeps (and the agents)
    qwex("cancel", run_id, check=True)
    qwex("wait", run_id, timeout=60)
    record = json.loads(qwex("status", "--json", run_id, check=True).stdout)
    assert record["status"] == "cancelled", record
    deadline = time.monotonic() + 10
    while left := processes_of_run(Run.model_validate(record), run_dir):
        assert time.monotonic() < deadline, f"still running after the cancel: {left}"
        time.sleep(0.1)
