"""Emptying a job folder keeps `.qwex/runs/<run>/` and never follows a link the job made."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from qwex_remote.server.db import open_database
from qwex_remote.server.retention import Sweeper, empty_job_dir
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.store import ServerStore, now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        yield f"sqlite:///{tmp_path / 'db' / 'server.db'}"
    else:
        yield request.getfixturevalue("postgres_db")


def test_a_sweep_takes_this_workers_jobs_final_for_longer_than_the_retention(
    url: str, tmp_path: Path
) -> None:
    store = ServerStore(open_database(url))
    folders = {}
    for sid, status, age, worker in [
        ("old", "succeeded", 3600, "w1"),
        ("older", "failed", 7200, "w1"),
        ("young", "succeeded", 10, "w1"),
        ("running", "running", 3600, "w1"),
        ("other", "succeeded", 3600, "w2"),
    ]:
        job, _ = store.submit(
            submitter="a",
            submission_id=sid,
            spec={},
            spec_hash=sid,
            backend="local",
            snapshot=None,
        )
        folder = tmp_path / sid
        (folder / ".qwex" / "runs" / "R").mkdir(parents=True)
        (folder / "file").write_text(sid)
        folders[sid] = folder
        finished = None if status == "running" else now() - timedelta(seconds=age)
        store.update(
            job.id,
            status=status,
            claimed_by=worker,
            job_dir=str(folder),
            run_id="R",
            finished_at=finished,
        )
    sweeper = Sweeper(store, "w1", retention=60)
    assert sweeper.sweep() == 2
    left = {sid for sid, folder in folders.items() if (folder / "file").exists()}
    assert left == {"young", "running", "other"}
    assert all((folder / ".qwex" / "runs" / "R").is_dir() for folder in folders.values())
    assert sweeper.sweep() == 0  # the next sweep looks only at what became due since


def test_everything_but_the_run_folder_goes_and_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "precious").write_text("host data")
    job = tmp_path / "job"
    run = job / ".qwex" / "runs" / "R1"
    run.mkdir(parents=True)
    (run / "stdout").write_text("out")
    (run / "run.json").write_text("{}")
    (job / "src" / "deep").mkdir(parents=True)
    (job / "src" / "deep" / "big.bin").write_bytes(bytes(1000))
    (job / "src" / "out").symlink_to(outside)  # a link inside a removed folder
    (job / "escape").symlink_to(outside / "keep")
    (job / ".qwex" / "names").mkdir()
    (job / ".qwex" / "runs" / "planted").symlink_to(outside)

    assert empty_job_dir(str(job), "R1") == 4
    assert sorted(p.name for p in job.iterdir()) == [".qwex"]
    assert sorted(p.name for p in (job / ".qwex").iterdir()) == ["runs"]
    assert sorted(p.name for p in (job / ".qwex" / "runs").iterdir()) == ["R1"]
    assert (run / "stdout").read_text() == "out"
    assert (outside / "keep" / "precious").read_text() == "host data"
    assert empty_job_dir(str(job), "R1") == 0  # a second sweep finds nothing to do
    assert empty_job_dir(str(tmp_path / "gone"), "R1") == 0


def test_a_job_folder_whose_store_is_a_link_keeps_nothing_of_it(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("host data")
    job = tmp_path / "job"
    job.mkdir()
    (job / ".qwex").symlink_to(outside)
    assert empty_job_dir(str(job), "R1") == 1
    assert list(job.iterdir()) == [] and (outside / "precious").exists()


@pytest.mark.parametrize(
    ("value", "seconds"), [("7d", 604800.0), ("12h", 43200.0), ("90s", 90.0), (30, 30.0)]
)
def test_the_retention_is_seconds_or_a_duration(value: object, seconds: float) -> None:
    assert retention_of(value).job_retention == seconds
    assert ServerSettings().job_retention == 7 * 86400
    assert retention_of("never").job_retention is None
    with pytest.raises(ValueError, match="not a duration"):
        retention_of("soon")


def retention_of(raw: object) -> ServerSettings:
    """Settings given `job_retention` as a configuration file or the environment carries it
    (a duration string or a number), not yet the float the field holds."""
    given: dict[str, Any] = {"job_retention": raw}
    return ServerSettings(**given)
