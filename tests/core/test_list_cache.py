"""`qwex list` of many final runs reads their rows from `.qwex/runs.rows`, a copy: what it
shows is always the records as they stand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_support import Qwex
from qwex_core.agent.record import NOTIFIED_FILE, transition, write_record
from qwex_core.ids import uuid7
from qwex_core.row_cache import CACHE_FILE, LOAD_AFTER

RUNS = LOAD_AFTER + 50


def make_runs(project: Path, count: int) -> list[str]:
    """`count` final runs the plugins were told of, written as the agent writes them."""
    made = []
    for i in range(count):
        run_id = uuid7()
        folder = project / ".qwex" / "runs" / run_id
        folder.mkdir(parents=True)
        record: dict[str, Any] = {
            "id": run_id,
            "short_id": run_id[-12:],
            "backend": "local",
            "spec": {"command": ["echo", str(i)], "name": None, "labels": {}},
            "created_at": "2026-11-26T10:00:00+00:00",
            "started_at": "2026-11-26T10:00:01+00:00",
            "finished_at": "2026-11-26T10:00:02+00:00",
            "reason": None,
            "history": [],
        }
        transition(record, "pending")
        transition(record, "succeeded", "exit code 0")
        write_record(folder, record)
        (folder / NOTIFIED_FILE).touch()
        made.append(run_id)
    return made[::-1]


def rows(qwex: Qwex, *args: str) -> list[list[str]]:
    out = qwex("list", "--no-trunc", *args, check=True).stdout
    return [line.split() for line in out.splitlines()[1:]]


def test_a_record_changed_after_it_was_cached_is_shown_as_it_is(project: Path, qwex: Qwex) -> None:
    ids = make_runs(project, RUNS)
    first = rows(qwex)
    assert [r[0] for r in first] == ids
    assert (project / ".qwex" / CACHE_FILE).is_file()
    oldest = project / ".qwex" / "runs" / ids[-1]
    record = json.loads((oldest / "run.json").read_text())
    record["status"], record["reason"] = "failed", "OOMKilled"
    write_record(oldest, record)
    shown = {r[0]: r for r in rows(qwex)}
    assert shown[ids[-1]][1] == "failed"
    assert [r[0] for r in rows(qwex, "-s", "failed")] == [ids[-1]]
    assert rows(qwex) == [shown[i] for i in ids]


def test_a_damaged_or_forged_cache_is_not_believed(project: Path, qwex: Qwex) -> None:
    ids = make_runs(project, RUNS)
    expected = rows(qwex)
    cache = project / ".qwex" / CACHE_FILE
    cache.write_text("{not json")
    assert rows(qwex) == expected
    data = json.loads(cache.read_text())
    oldest = ids[-1]
    data["runs"][oldest][5] = {"status": "not a string"}  # a row `qwex list` cannot show
    data["runs"][ids[-2]] = data["runs"][oldest]  # another run's row under its id
    cache.write_text(json.dumps(data))
    assert rows(qwex) == expected
