"""A far side that logs in several pieces one after the other (a pod per retry of a
Kubernetes Job) names each piece's source (`LogBytes.source`): core keeps where each source
begins in the run's log, read back by any process (`pushed.log_sources`), so the backend
can go on reading each source from the right byte."""

from __future__ import annotations

from pathlib import Path

from qwex_core.pushed import LogBytes, LogCopy, log_sources, record_lock


def append(run_dir: Path, *pieces: LogBytes) -> list[bool]:
    with record_lock(run_dir), LogCopy(run_dir, ("stdout",)) as copy:
        return [copy.append(p) for p in pieces]


def test_each_source_begins_where_its_first_byte_landed(tmp_path: Path) -> None:
    assert log_sources(tmp_path, "stdout") == []
    append(tmp_path, LogBytes("stdout", 0, b"first try\n", source="pod-a"))
    append(
        tmp_path,
        LogBytes("stdout", 0, b"first try\nmore\n", source="pod-a"),  # overlaps: once
        LogBytes("stdout", 15, b"second ", source="pod-b"),
    )
    append(tmp_path, LogBytes("stdout", 22, b"try\n", source="pod-b"))
    assert (tmp_path / "stdout.log").read_bytes() == b"first try\nmore\nsecond try\n"
    assert log_sources(tmp_path, "stdout") == [("pod-a", 0), ("pod-b", 15)]
    assert log_sources(tmp_path, "stderr") == []


def test_a_piece_past_the_end_records_no_source(tmp_path: Path) -> None:
    assert append(tmp_path, LogBytes("stdout", 5, b"late", source="pod-a")) == [False]
    assert log_sources(tmp_path, "stdout") == []


def test_pieces_without_a_source_keep_none(tmp_path: Path) -> None:
    append(tmp_path, LogBytes("stdout", 0, b"plain\n"))
    assert log_sources(tmp_path, "stdout") == []
    assert not (tmp_path / "log-sources.json").exists()


def test_a_pieces_time_is_indexed_to_the_microsecond(tmp_path: Path) -> None:
    """The far side's time of a piece reaches the write-order index exactly (a float
    product turned .123451 into .123450880)."""
    from datetime import UTC, datetime

    from qwex_core.logs import LogReader

    at = datetime(2026, 12, 2, 5, 50, 3, 123451, tzinfo=UTC)
    append(tmp_path, LogBytes("stdout", 0, b"line\n", at=at))
    with LogReader({"stdout": tmp_path / "stdout.log"}) as reader:
        (chunk,) = reader.chunks(final=True)
    assert chunk.time == 1_796_190_603_123_451_000
