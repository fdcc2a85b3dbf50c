"""Reading a run's log files, which outlive any container or pod (`follow` streams them)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 1 << 20
STREAMS = ("stdout", "stderr")


def tail_offset(fh: BinaryIO, lines: int) -> int:
    """The byte offset where the last `lines` lines of `fh` begin."""
    end = fh.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos, found, block = end, 0, 1 << 16
    while pos > 0:
        step = min(block, pos)
        pos -= step
        fh.seek(pos)
        data = fh.read(step)
        if pos + step == end and data.endswith(b"\n"):
            data = data[:-1]  # a final newline does not start another line
        idx = len(data)
        while True:
            idx = data.rfind(b"\n", 0, idx)
            if idx < 0:
                break
            found += 1
            if found == lines:
                return pos + idx + 1
    return 0


@dataclass(frozen=True)
class Chunk:
    """Bytes of one stream's log, starting at byte `offset` of that log."""

    stream: str
    offset: int
    data: bytes


class LogReader:
    """Reads what is new in a run's log files, from given byte offsets or the last lines."""

    def __init__(
        self,
        paths: Mapping[str, str | os.PathLike[str]],
        *,
        offsets: Mapping[str, int] | None = None,
        tail: int | None = None,
    ) -> None:
        self.files: dict[str, BinaryIO] = {}
        self.offsets: dict[str, int] = {}
        for stream, path in paths.items():
            try:
                fh = open(path, "rb")  # noqa: SIM115 - kept open while following
            except FileNotFoundError:
                continue
            if offsets is not None:
                start = offsets.get(stream, 0)
            else:
                start = tail_offset(fh, tail) if tail is not None else 0
            self.offsets[stream] = fh.seek(start)
            self.files[stream] = fh

    def __iter__(self) -> Iterator[Chunk]:
        """Whatever was written since the last read, in chunks of at most `CHUNK` bytes."""
        for stream, fh in self.files.items():
            while data := fh.read(CHUNK):
                yield Chunk(stream, self.offsets[stream], data)
                self.offsets[stream] += len(data)

    def read(self) -> list[Chunk]:
        return list(self)

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
