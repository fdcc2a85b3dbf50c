"""Reading a run's log files, which outlive any container or pod (`follow` streams them).

Both streams are replayed in the order the command wrote them, by the run's
write-order index (`qwex_core.agent.order`, `output.idx`); a run recorded without
one is read stdout first, then stderr, as qwex always did. Lines are those of each
stream; a line's time (`Chunk.time`, `qwex logs -t`, `--since`) is when its first
byte was read. `--tail N` and `--since T` select the last lines of the merged output
and are found from the end or by bisection: neither reads a whole large log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from qwex_core.agent.order import INDEX_FILE, RECORD, STREAM_NAMES

CHUNK = 1 << 20
STREAMS = ("stdout", "stderr")
BATCH = 1 << 14
"""Most index records read at once."""


def tail_offset(fh: BinaryIO, lines: int) -> int:
    """The byte offset where the last `lines` lines of `fh` begin."""
    return tail_lines(fh, lines)[0]


def tail_lines(fh: BinaryIO, lines: int) -> tuple[int, int]:
    """(offset where the last `lines` lines of `fh` begin, how many lines that is)."""
    end = fh.seek(0, os.SEEK_END)
    if lines <= 0:
        return end, 0
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
                return pos + idx + 1, found
    return 0, found + (1 if end > 0 else 0)


@dataclass(frozen=True)
class Chunk:
    """Bytes of one stream's log, starting at byte `offset` of that log."""

    stream: str
    offset: int
    data: bytes
    time: int | None = None
    """When these bytes were written, in nanoseconds since the epoch; None when unknown
    (a run recorded without a write-order index)."""


@dataclass(frozen=True)
class Entry:
    """One record of the write-order index: `length` bytes of `stream` from `offset`."""

    time: int
    stream: str | None
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


Mode = Literal["index", "plain"]


class LogReader:
    """Reads what is new in a run's log files, in write order, from given byte offsets, the
    last lines, or the lines written since a time.

    `paths` maps streams to their logs (those left out are not read); `index` is the
    write-order index (default: `output.idx` beside the first log). `tail` keeps the last
    lines of all streams together, `since` (ns since the epoch) the lines written then or
    later; both at once keep the last `tail` of those."""

    def __init__(
        self,
        paths: Mapping[str, str | os.PathLike[str]],
        *,
        offsets: Mapping[str, int] | None = None,
        tail: int | None = None,
        since: int | None = None,
        index: str | os.PathLike[str] | None = None,
    ) -> None:
        self.files: dict[str, BinaryIO] = {}
        self.offsets: dict[str, int] = {}
        for stream, path in paths.items():
            try:
                self.files[stream] = open(path, "rb")  # noqa: SIM115 - kept open while following
            except FileNotFoundError:
                continue
            self.offsets[stream] = 0
        first = next(iter(paths.values()), None)
        self.index_path = (
            Path(index) if index is not None else Path(first).parent / INDEX_FILE if first else None
        )
        self._index: BinaryIO | None = None
        self._pos = 0
        self.mode: Mode | None = None
        """How the logs are read: by the index, or stream after stream (no index); None
        until there is output to tell."""
        self._decide()
        if self.mode == "index":
            self._start_indexed(offsets, tail, since)
        elif self.mode == "plain":
            self._start_plain(offsets, tail)
        elif offsets is not None:
            self.offsets.update({s: offsets.get(s, 0) for s in self.files})

    # -- which way to read ---------------------------------------------------------------

    def _decide(self) -> None:
        """Index mode when the index exists; otherwise plain once any log has bytes (the
        agent makes the index before it writes a byte: sizes are looked at first). A plain
        reader whose index appears later (a copy that brought the logs first) goes on by
        it from where it is."""
        if self.mode == "plain" and self.index_path is not None and self.index_path.exists():
            self.mode = None
            self._decide()
            if self.mode == "index":
                self._resume(self.offsets, self._count())
            return
        if self.mode is not None:
            return
        written = any(os.fstat(fh.fileno()).st_size > 0 for fh in self.files.values())
        if self.index_path is not None:
            try:
                self._index = open(self.index_path, "rb")  # noqa: SIM115 - kept open
            except OSError:
                self._index = None
        if self._index is not None:
            self.mode = "index"
        elif written:
            self.mode = "plain"

    def _start_plain(self, offsets: Mapping[str, int] | None, tail: int | None) -> None:
        """Stream after stream: `tail` counts back from the end of the last one."""
        if offsets is not None:
            for stream, fh in self.files.items():
                self.offsets[stream] = fh.seek(offsets.get(stream, 0))
            return
        left = tail
        for stream in reversed(list(self.files)):
            fh = self.files[stream]
            if left is None:
                start = 0
            else:
                start, found = tail_lines(fh, left)
                left -= min(found, left)
            self.offsets[stream] = fh.seek(start)

    # -- the index -----------------------------------------------------------------------

    def _count(self) -> int:
        assert self._index is not None
        return os.fstat(self._index.fileno()).st_size // RECORD.size

    def _entries(self, first: int, count: int) -> list[Entry]:
        assert self._index is not None
        data = os.pread(self._index.fileno(), count * RECORD.size, first * RECORD.size)
        whole = len(data) - len(data) % RECORD.size
        return [
            Entry(time, STREAM_NAMES.get(code), offset, length)
            for time, offset, length, code in RECORD.iter_unpack(data[:whole])
        ]

    def _entry(self, number: int) -> Entry:
        return self._entries(number, 1)[0]

    def _size(self, stream: str) -> int:
        return os.fstat(self.files[stream].fileno()).st_size

    def _bytes(self, stream: str, offset: int, length: int) -> bytes:
        return os.pread(self.files[stream].fileno(), length, offset)

    def _line_starts(self, entry: Entry) -> list[int]:
        """Offsets in `entry`'s stream where a line begins within its bytes."""
        assert entry.stream is not None
        before = 1 if entry.offset > 0 else 0
        data = self._bytes(entry.stream, entry.offset - before, entry.length + before)
        starts = [entry.offset] if not before or data[:1] == b"\n" else []
        idx = before
        while (idx := data.find(b"\n", idx, len(data) - 1)) >= 0:
            idx += 1
            starts.append(entry.offset - before + idx)
        return starts

    def _start_indexed(
        self, offsets: Mapping[str, int] | None, tail: int | None, since: int | None
    ) -> None:
        count = self._count()
        if offsets is not None:
            self._resume(offsets, count)
            return
        first = 0
        starts = dict.fromkeys(self.files, 0)
        if since is not None:
            first, starts = self._since(since, count)
        if tail is not None:
            cut, tail_starts = self._tail(tail, first, count)
            first = max(first, cut)
            starts = {s: max(starts[s], tail_starts[s]) for s in starts}
        self._pos = first
        self.offsets.update(starts)

    def _resume(self, offsets: Mapping[str, int], count: int) -> None:
        """Go on after bytes already read (`offsets`): from the first entry not all read."""
        self.offsets.update({s: offsets.get(s, 0) for s in self.files})
        number = 0
        while number < count:
            entries = self._entries(number, BATCH)
            for entry in entries:
                if entry.stream in self.files and entry.end > self.offsets[entry.stream]:
                    self._pos = number
                    return
                number += 1
        self._pos = number

    def _since(self, since: int, count: int) -> tuple[int, dict[str, int]]:
        """The first entry written at `since` or later (by bisection: times grow), and per
        stream the first line that begins in it or after."""
        low, high = 0, count
        while low < high:
            mid = (low + high) // 2
            if self._entry(mid).time < since:
                low = mid + 1
            else:
                high = mid
        starts: dict[str, int] = {}
        number = low
        while len(starts) < len(self.files) and number < count:
            for entry in self._entries(number, BATCH):
                number += 1
                if entry.stream not in self.files or entry.stream in starts:
                    continue
                lines = self._line_starts(entry)
                if lines:
                    starts[entry.stream] = lines[0]
        for stream in self.files:
            starts.setdefault(stream, self._size(stream))  # no line since: only what comes
        return low, starts

    def _tail(self, lines: int, first: int, count: int) -> tuple[int, dict[str, int]]:
        """The entry where the last `lines` lines (of those from entry `first`) begin, and
        per stream where its first kept line begins; read from the end back."""
        starts = {s: self._size(s) for s in self.files}
        found, number = 0, count
        if lines <= 0:
            return count, starts
        while number > first:
            block = max(first, number - BATCH)
            for entry in reversed(self._entries(block, number - block)):
                number -= 1
                if entry.stream not in self.files:
                    continue
                for start in reversed(self._line_starts(entry)):
                    starts[entry.stream] = start
                    found += 1
                    if found == lines:
                        return number, starts
        return first, starts

    # -- reading -------------------------------------------------------------------------

    def chunks(self, *, final: bool = False) -> Iterator[Chunk]:
        """Whatever was written since the last read, in write order, in chunks of at most
        `CHUNK` bytes. `final`: the run has ended, so bytes no index entry covers (or whose
        entry names bytes that never came) are read too, after the rest."""
        self._decide()
        if self.mode == "index":
            yield from self._indexed(final)
        elif self.mode == "plain":
            yield from self._plain()

    def _plain(self) -> Iterator[Chunk]:
        for stream, fh in self.files.items():
            fh.seek(self.offsets[stream])
            while data := fh.read(CHUNK):
                yield Chunk(stream, self.offsets[stream], data)
                self.offsets[stream] += len(data)

    def _indexed(self, final: bool) -> Iterator[Chunk]:
        sizes: dict[str, int] = {}
        while entries := self._entries(self._pos, BATCH):
            for entry in entries:
                stream = entry.stream
                if stream not in self.files:
                    self._pos += 1
                    continue
                assert stream is not None
                start = self.offsets[stream]  # before `entry.offset`: bytes no entry named
                if entry.end > start:
                    if stream not in sizes or sizes[stream] < entry.end:
                        sizes[stream] = self._size(stream)
                    if sizes[stream] < entry.end and not final:
                        return  # its bytes are not there yet (a copy still under way)
                    yield from self._piece(stream, start, min(entry.end, sizes[stream]), entry.time)
                self._pos += 1
        if final:
            for stream in self.files:
                yield from self._piece(stream, self.offsets[stream], self._size(stream), None)

    def _piece(self, stream: str, start: int, end: int, time: int | None) -> Iterator[Chunk]:
        while start < end:
            data = self._bytes(stream, start, min(CHUNK, end - start))
            if not data:
                return
            yield Chunk(stream, start, data, time)
            start += len(data)
            self.offsets[stream] = start

    def __iter__(self) -> Iterator[Chunk]:
        return self.chunks()

    def read(self, *, final: bool = False) -> list[Chunk]:
        return list(self.chunks(final=final))

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()
        if self._index is not None:
            self._index.close()

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
