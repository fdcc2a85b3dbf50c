"""A name never stands for another run's id, through the real `qwex` console script."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def _ids(qwex: Qwex) -> list[str]:
    return [r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)]


def test_a_name_that_reads_as_an_id_is_refused(project: Path, qwex: Qwex) -> None:
    first = qwex("run", "--", "true", check=True)
    run_id = _ids(qwex)[0]
    short = run_id[-12:]
    assert first.returncode == 0
    for name in (short, "3198", "CAFE", short[:4], run_id[:13]):
        named = qwex("run", "--name", name, "--", "true")
        assert named.returncode == 2, (name, named.stderr)
        assert "hex" in named.stderr and "--name" in named.stderr
        assert _ids(qwex) == [run_id]  # no run was made
    # `rm SHORT` removes the run whose ID `list` shows, and only it.
    removed = qwex("rm", short, check=True)
    assert removed.stdout.strip() == short
    assert _ids(qwex) == []
    # Names with a letter past f (or '_', '.') still work.
    qwex("run", "--name", "train-3", "--", "true", check=True)
    qwex("run", "--name", "0_1", "--", "true", check=True)
    assert qwex("status", "0_1", "--json", check=True).returncode == 0


def test_an_argument_matching_a_name_and_an_id_is_an_error_naming_both(
    project: Path, qwex: Qwex
) -> None:
    qwex("run", "--", "echo", "by-id", check=True)
    target = _ids(qwex)[0]
    qwex("run", "--", "echo", "other", check=True)
    other = next(i for i in _ids(qwex) if i != target)
    # A store written by an older qwex may hold a hex name: here the other run is named
    # after a prefix of the target's short id.
    prefix = target[-12:][:5]
    names = project / ".qwex" / "names"
    names.mkdir(exist_ok=True)
    (names / prefix).write_text(other)
    for command in ("rm", "status", "logs"):
        result = qwex(command, prefix)
        assert result.returncode == 1, (command, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and target[-12:] in line and other[-12:] in line
        assert "name" in line
    assert sorted(_ids(qwex)) == sorted([target, other])  # nothing removed


def test_the_docs_state_one_rule_for_run_arguments(qwex: Qwex) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    top = qwex("--help", check=True).stdout
    listing = qwex("list", "--help", check=True).stdout
    assert "prefix of a name" not in readme and "prefix of either" not in readme
    for text in (readme, top, listing):
        flat = " ".join(text.split())
        assert "unique prefix of an id" in flat, text
        assert "hex digits" in flat, text
