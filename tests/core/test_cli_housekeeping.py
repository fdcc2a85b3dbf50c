"""`qwex rm` and `qwex prune`, through the real `qwex` console script."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from cli_support import assert_gone, wait_status

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def _ids(qwex: Qwex) -> list[str]:
    return [r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)]


def test_rm_deletes_ended_runs_and_refuses_live_ones_unless_forced(
    project: Path, qwex: Qwex
) -> None:
    qwex("run", "--name", "done", "--", "echo", "hi", check=True)
    started = qwex("run", "-d", "--no-trunc", "--name", "slow", "--", "sleep", "60", check=True)
    live = started.stdout.strip()
    runs = project / ".qwex" / "runs"

    refused = qwex("rm", "slow")
    assert refused.returncode == 1
    assert f"run {live[-12:]} (running) has not ended" in refused.stderr
    assert len(list(runs.iterdir())) == 2  # nothing removed

    removed = qwex("rm", "done", "slow")  # what can go goes; the rest is named
    assert removed.returncode == 1 and "has not ended" in removed.stderr
    assert len(removed.stdout.split()) == 1
    assert _ids(qwex) == [live]
    assert not (project / ".qwex" / "names" / "done").exists()

    pid = wait_status(qwex, live, {"running"})["pid"]
    forced = qwex("rm", "-f", "slow", check=True)
    assert forced.stdout.strip() == live[-12:]
    assert not runs.joinpath(live).exists() and _ids(qwex) == []
    assert_gone([pid])  # killed, not only forgotten
    # The names are free again.
    qwex("run", "--name", "done", "--", "true", check=True)
    assert qwex("rm", "nothing-here").returncode == 1


def test_prune_by_age_and_status_with_dry_run(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "sh", "-c", "exit 3")
    qwex("run", "--", "echo", "ok", check=True)
    old = qwex("run", "-d", "--no-trunc", "--", "sh", "-c", "exit 4", check=True).stdout.strip()
    live = qwex("run", "-d", "--no-trunc", "--", "sleep", "60", check=True).stdout.strip()
    deadline = time.monotonic() + 20
    while json.loads(qwex("status", old, "--json").stdout)["status"] != "failed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    record_path = project / ".qwex" / "runs" / old / "run.json"
    record = json.loads(record_path.read_text())
    record["finished_at"] = "2020-01-01T00:00:00+00:00"
    record_path.write_text(json.dumps(record))

    dry = qwex("prune", "--older-than", "7d", "--dry-run", check=True)
    assert dry.stdout.split() == [old[-12:], "failed"]
    assert "would delete 1 run, would free" in dry.stderr
    assert len(_ids(qwex)) == 4

    pruned = qwex("prune", "--older-than", "7d", check=True)
    assert "deleted 1 run, freed" in pruned.stderr and old not in _ids(qwex)

    failed = qwex("prune", "--status", "failed", check=True)
    assert "deleted 1 run, freed" in failed.stderr
    everything = qwex("prune", "--force", check=True)
    assert "deleted 1 run" in everything.stderr
    assert _ids(qwex) == [live]  # a live run is never pruned
    assert qwex("prune", "--older-than", "soon").returncode == 2
    assert qwex("prune", "--status", "running").returncode == 2
    qwex("rm", "-f", live, check=True)
    assert os.listdir(project / ".qwex" / "runs") == []
