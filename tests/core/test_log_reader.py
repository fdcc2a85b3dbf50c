"""`LogReader` on a long run's logs: `--tail` and `--since` find their lines from the end
or by bisection of the write-order index, never by reading the whole log."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from qwex_core.agent.order import INDEX_FILE, STREAM_CODES, record
from qwex_core.logs import LogReader

LINES = 200_000
START = 1_800_000_000 * 10**9


def long_run(folder: Path) -> None:
    """A run that wrote LINES lines, one a millisecond, alternating stdout and stderr."""
    logs = {"stdout": bytearray(), "stderr": bytearray()}
    index = bytearray()
    for number in range(LINES):
        stream = "stdout" if number % 2 == 0 else "stderr"
        line = f"line {number}\n".encode()
        index += record(START + number * 10**6, STREAM_CODES[stream], len(logs[stream]), len(line))
        logs[stream] += line
    for stream, data in logs.items():
        (folder / f"{stream}.log").write_bytes(data)
    (folder / INDEX_FILE).write_bytes(index)


@pytest.fixture
def read_bytes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bytes the reader read, call by call."""
    counts: list[int] = []
    real = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        data = real(fd, length, offset)
        counts.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    return counts


def text(reader: LogReader) -> bytes:
    return b"".join(chunk.data for chunk in reader.chunks(final=True))


def test_tail_and_since_read_only_near_what_they_keep(
    tmp_path: Path, read_bytes: list[int]
) -> None:
    long_run(tmp_path)
    paths = {s: tmp_path / f"{s}.log" for s in ("stdout", "stderr")}
    total = sum(p.stat().st_size for p in (*paths.values(), tmp_path / INDEX_FILE))
    with LogReader(paths, tail=3) as reader:
        assert text(reader) == b"line 199997\nline 199998\nline 199999\n"
    assert sum(read_bytes) < total // 10  # its own records and lines, not the whole log
    read_bytes.clear()
    with LogReader(paths, since=START + (LINES - 2) * 10**6) as reader:
        assert text(reader) == b"line 199998\nline 199999\n"
    assert sum(read_bytes) < total // 10
    read_bytes.clear()
    with LogReader({"stderr": paths["stderr"]}, tail=2) as reader:
        assert text(reader) == b"line 199997\nline 199999\n"
    assert sum(read_bytes) < total // 10


def write_run(folder: Path, pieces: list[tuple[str, bytes]], index: bool = True) -> None:
    """A run folder whose command wrote `pieces` in this order, one a second."""
    logs = {"stdout": b"", "stderr": b""}
    records = b""
    for number, (stream, data) in enumerate(pieces):
        records += record(
            START + number * 10**9, STREAM_CODES[stream], len(logs[stream]), len(data)
        )
        logs[stream] += data
    for stream, data in logs.items():
        (folder / f"{stream}.log").write_bytes(data)
    if index:
        (folder / INDEX_FILE).write_bytes(records)


PIECES = [("stdout", b"1\n"), ("stderr", b"2\n"), ("stdout", b"3\n"), ("stderr", b"4\n")]


def test_a_follower_resumed_from_offsets_goes_on_in_order(tmp_path: Path) -> None:
    """`qwex run` follows again from the bytes it printed (after a Ctrl-C): what is left,
    in write order, nothing twice."""
    write_run(tmp_path, PIECES)
    paths = {s: tmp_path / f"{s}.log" for s in ("stdout", "stderr")}
    with LogReader(paths, offsets={"stdout": 2, "stderr": 2}) as reader:
        assert [(c.stream, c.data) for c in reader.chunks()] == [
            ("stdout", b"3\n"),
            ("stderr", b"4\n"),
        ]


def test_an_index_that_comes_after_the_logs_is_followed_from_then_on(tmp_path: Path) -> None:
    """A copy (a remote run's) may bring bytes before their index: the reader starts
    stream after stream and goes on by the index once it is there; an entry whose bytes
    have not come yet waits for them."""
    write_run(tmp_path, PIECES[:1], index=False)
    paths = {s: tmp_path / f"{s}.log" for s in ("stdout", "stderr")}
    with LogReader(paths) as reader:
        assert [c.data for c in reader.chunks()] == [b"1\n"]
        first_mode = reader.mode
        assert first_mode == "plain"
        write_run(tmp_path, PIECES)
        (tmp_path / "stdout.log").write_bytes(b"1\n")  # 3 has not come yet
        assert [c.data for c in reader.chunks()] == [b"2\n"]  # 4 waits behind 3
        (tmp_path / "stdout.log").write_bytes(b"1\n3\n")
        assert [c.data for c in reader.chunks()] == [b"3\n", b"4\n"]
        assert reader.mode == "index"
