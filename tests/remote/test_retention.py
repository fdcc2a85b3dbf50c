"""Emptying a job folder keeps `.qwex/runs/<run>/` and never follows a link the job made."""

from __future__ import annotations

from pathlib import Path

import pytest
from qwex_remote.server.retention import empty_job_dir
from qwex_remote.server.settings import ServerSettings


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
    assert ServerSettings(job_retention=value).job_retention == seconds
    assert ServerSettings().job_retention == 7 * 86400
    assert ServerSettings(job_retention="never").job_retention is None
    with pytest.raises(ValueError, match="not a duration"):
        ServerSettings(job_retention="soon")
