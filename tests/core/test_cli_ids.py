"""Short ids, names and `qwex list` filters, through the real `qwex` console script."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def _list_rows(qwex: Qwex, *args: str) -> list[list[str]]:
    """The cells of `qwex list`, cut where the header's columns start."""
    out = qwex("list", *args, check=True).stdout.splitlines()
    headers = ["ID", "STATUS", "BACKEND", "CREATED", "DURATION", "NAME", "COMMAND"]
    assert out[0].split() == headers
    starts = [out[0].index(h) for h in headers] + [None]
    return [[line[a:b].strip() for a, b in itertools.pairwise(starts)] for line in out[1:]]


def test_runs_made_together_get_distinct_short_ids_that_every_command_takes(
    project: Path, qwex: Qwex
) -> None:
    ids = [
        qwex("run", "-d", "--no-trunc", "--", "echo", f"run{i}", check=True).stdout.strip()
        for i in range(6)
    ]
    # UUIDv7: runs made within a second share their first 8+ characters.
    assert len({i[:8] for i in ids}) < len(ids)
    rows = _list_rows(qwex)
    shorts = [row[0] for row in rows]
    assert len(shorts) == 6 and len(set(shorts)) == 6
    assert all(len(s) <= 12 for s in shorts)
    records = json.loads(qwex("list", "--json", check=True).stdout)
    by_short = {r["short_id"]: r["id"] for r in records}
    assert set(by_short) == set(shorts) and set(by_short.values()) == set(ids)
    for short, full in by_short.items():
        status = json.loads(qwex("status", short, "--json", check=True).stdout)
        assert status["id"] == full
        logs = qwex("logs", "-f", short, check=True)
        assert logs.stdout.startswith("run")
    full_rows = _list_rows(qwex, "--no-trunc")
    assert {row[0] for row in full_rows} == set(ids)


def test_a_name_works_wherever_an_id_does_and_is_unique(project: Path, qwex: Qwex) -> None:
    qwex("run", "--name", "train-1", "-l", "team=nlp", "--", "echo", "named", check=True)
    qwex("run", "-l", "team=cv", "--", "echo", "other", check=True)
    assert qwex("logs", "train-1", check=True).stdout == "named\n"
    assert json.loads(qwex("status", "train-1", "--json").stdout)["spec"]["name"] == "train-1"
    rows = _list_rows(qwex)
    assert [row[5] for row in rows] == ["-", "train-1"]

    clash = qwex("run", "--name", "train-1", "--", "echo", "again")
    assert clash.returncode == 1
    assert "qwex: error: the name 'train-1' is taken by run" in clash.stderr
    assert clash.stdout == "" and len(list((project / ".qwex" / "runs").iterdir())) == 2

    bad = qwex("run", "--name", "no spaces", "--", "true")
    assert bad.returncode == 2 and "--name" in bad.stderr

    assert [r[5] for r in _list_rows(qwex, "--filter", "name=train")] == ["train-1"]
    assert [r[5] for r in _list_rows(qwex, "--filter", "label=team=nlp")] == ["train-1"]
    assert len(_list_rows(qwex, "--filter", "label=team")) == 2
    none = qwex("list", "--filter", "label=team=nlp", "--filter", "name=nope")
    assert none.returncode == 0 and none.stdout == "" and "no runs match" in none.stderr
    unknown = qwex("list", "--filter", "colour=red")
    assert unknown.returncode == 2 and "name" in unknown.stderr and "label" in unknown.stderr


def test_a_name_is_claimed_by_one_of_many_runs_started_at_once(project: Path) -> None:
    import sys

    qwex_bin = str(Path(sys.executable).parent / "qwex")
    procs = [
        subprocess.Popen(
            [qwex_bin, "run", "-d", "--no-trunc", "--name", "race", "--", "true"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=60), *p.communicate()) for p in procs]
    winners = [out.strip() for code, out, _ in results if code == 0]
    assert len(winners) == 1, results
    assert all("the name 'race' is taken" in err for code, _, err in results if code != 0)
    assert [p.name for p in (project / ".qwex" / "runs").iterdir()] == winners
    assert (project / ".qwex" / "names" / "race").read_text() == winners[0]
