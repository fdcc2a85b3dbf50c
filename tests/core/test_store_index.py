"""The store's id index (`.qwex/runs.index`): a copy of the runs folder's listing that
`qwex list` and id lookups read instead of listing 100,000 folders; whatever happens to it
or to the folders, what users see is the runs folder."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from cli_support import Qwex

INDEX = Path(".qwex/runs.index")


def listed(qwex: Qwex) -> list[str]:
    return [r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)]


def indexed(project: Path, qwex: Qwex, runs: int) -> list[str]:
    """`runs` runs, then a listing once the folder is old enough to be indexed."""
    for _ in range(runs):
        qwex("run", "-q", "--", "true", check=True)
    time.sleep(0.3)
    ids = listed(qwex)
    assert (project / INDEX).is_file()
    return ids


def test_a_new_run_is_seen_by_id_and_in_the_list(project: Path, qwex: Qwex) -> None:
    before = indexed(project, qwex, 2)
    new = qwex("run", "-d", "--no-trunc", "--", "true", check=True).stdout.strip()
    assert listed(qwex) == [new, *before]
    assert qwex("status", new[-12:], check=True).stdout.startswith(f"id         {new}\n")
    assert qwex("status", new[-12:-6], check=True).returncode == 0


def test_removed_and_copied_in_runs_show_as_the_folder_is(
    project: Path, qwex: Qwex, tmp_path: Path
) -> None:
    first, second, third = indexed(project, qwex, 3)
    qwex("rm", "-f", second, check=True)
    assert listed(qwex) == [first, third]
    result = qwex("status", second[-12:])
    assert result.returncode == 1 and "no run matches" in result.stderr
    # A run folder copied in from elsewhere (by hand, without qwex), after the index was written.
    time.sleep(0.3)
    listed(qwex)
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "qwex.toml").write_text("")
    made = qwex("run", "-d", "--no-trunc", "--", "true", cwd=elsewhere, check=True).stdout.strip()
    qwex("wait", made, cwd=elsewhere, check=True)
    shutil.copytree(elsewhere / ".qwex" / "runs" / made, project / ".qwex" / "runs" / made)
    assert listed(qwex) == [made, first, third]
    assert qwex("status", made[-12:], check=True).returncode == 0


def test_a_missing_or_damaged_index_is_rebuilt_from_the_folders(project: Path, qwex: Qwex) -> None:
    ids = indexed(project, qwex, 3)
    (project / INDEX).unlink()
    assert listed(qwex) == ids
    (project / INDEX).write_text("qwex-ids 1 00000000000000000000\nnot-a-run\n")
    assert listed(qwex) == ids
    assert "not-a-run" not in (project / INDEX).read_text()
    header = (project / INDEX).read_bytes()[:32]
    (project / INDEX).write_bytes(header + b"01234567-0000-7000-8000-000000000000\n")
    # An index that misses a run (written by hand): an id it does not know is looked for
    # in the folder before it is said to be no run.
    assert qwex("status", ids[0][-12:], check=True).returncode == 0
