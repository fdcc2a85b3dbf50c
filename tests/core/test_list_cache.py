"""`qwex list` of many final runs reads their rows from `.qwex/runs.rows`, a copy: what it
shows is always the records as they stand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli_support import Qwex
from qwex_core.agent.record import NOTIFIED_FILE, transition, write_record
from qwex_core.ids import uuid7
from qwex_core.row_cache import CACHE_FILE, LOAD_AFTER

RUNS = LOAD_AFTER + 50


def make_runs(project: Path, count: int) -> list[str]:
    """`count` final runs the plugins were told of, written as the agent writes them."""
    made = [
        write_final(
            project,
            spec={"command": ["echo", str(i)], "name": None, "labels": {}},
            created_at="2026-11-26T10:00:00+00:00",
            started_at="2026-11-26T10:00:01+00:00",
        )
        for i in range(count)
    ]
    return made[::-1]


def write_final(project: Path, **fields: Any) -> str:
    """One final run the plugins were told of, with `fields` in its record."""
    run_id = uuid7()
    folder = project / ".qwex" / "runs" / run_id
    folder.mkdir(parents=True)
    record: dict[str, Any] = {
        "id": run_id,
        "short_id": run_id[-12:],
        "backend": "local",
        "reason": None,
        "history": [],
    }
    transition(record, "pending")
    transition(record, "succeeded", "exit code 0")
    record.update(fields)  # the times too: `transition` gave them this instant
    write_record(folder, record)
    (folder / NOTIFIED_FILE).touch()
    return run_id


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


def test_rows_from_the_cache_are_shown_byte_for_byte_as_from_the_records(
    project: Path, qwex: Qwex
) -> None:
    """The cache keeps a command as its shell text and the times as microseconds: what
    `qwex list` prints from it is what it prints from the records, quoting and rounding
    included."""
    now = datetime.now(UTC)
    created = now - timedelta(days=3, hours=12)  # "3d ago" for twelve hours either way
    odd = [
        (["echo", 'it\'s a "test"', "é ü", ""], 0.25, None, {}),
        (["bash", "-c", "x=1; echo $x | tr 1 2"], 0.123456, "nightly", {"team": "ml"}),
        (["one word with spaces"], 59.96, None, {}),
        (["sleep", "61"], 61.0, "a name", {}),
        (["train.py", "--lr=3e-4"], 3 * 3600 + 5 * 60 + 0.5, None, {"k": "v"}),
        (["never", "started"], None, None, {}),
    ]
    odd_ids = []
    for command, seconds, name, labels in odd:
        started: datetime | None = None
        finished = created + timedelta(seconds=2)
        if seconds is not None:
            started = created + timedelta(seconds=1)
            finished = started + timedelta(seconds=seconds)
        odd_ids.append(
            write_final(
                project,
                spec={"command": command, "name": name, "labels": labels},
                created_at=created.isoformat(),
                started_at=None if started is None else started.isoformat(),
                finished_at=finished.isoformat(),
            )
        )
    make_runs(project, LOAD_AFTER)  # newer: read one by one, so the odd ones come from the cache
    shown = {}
    for args in (["--no-trunc"], []):
        from_records = qwex("list", *args, check=True).stdout
        cache = json.loads((project / ".qwex" / CACHE_FILE).read_text())
        assert set(odd_ids) <= set(cache["runs"])
        from_cache = qwex("list", *args, check=True).stdout
        assert from_cache == from_records
        shown[len(args)] = from_records
        (project / ".qwex" / CACHE_FILE).unlink()
    listed = {line.split()[0]: line for line in shown[1].splitlines()[1:]}
    assert "0.2s" in listed[odd_ids[0]] and "'it'\"'\"'s a \"test\"'" in listed[odd_ids[0]]
    assert "1h" not in listed[odd_ids[4]] and "3h05m" in listed[odd_ids[4]]
