"""The local copy of a far-away run's log: appended by byte offset, under the run's lock.

A backend whose agent runs far away (`qwex_core.observed`) hands core the bytes its far
side holds, as `LogBytes` at a byte offset of their stream. The offset of the local copy
is the local file's size: only this copy appends to it, so a copy cut short anywhere
(the process killed mid-write) resumes exactly, and bytes the copy already holds are
skipped, never written twice. Without the far side's own write-order index (`output.idx`
copied as the stream `index`), each copied piece gets an index entry here, with the far
side's time of it when known, so `qwex logs -t` and `--since` work the same for every run.
A far side that logs in several logs one after the other (a Kubernetes pod per retry)
names each piece's log (`LogBytes.source`); where each source begins in the run's log is
kept in `log-sources.json`, so the backend reads each source from its own byte on.

A far side that pushes its log as it is written (a follow stream) is followed by one
`Pusher` thread per run in a process: it appends what comes and wakes the waiter at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from qwex_core.agent.order import INDEX_FILE, STREAM_CODES
from qwex_core.agent.order import record as index_record
from qwex_core.agent.record import STDERR_FILE, STDOUT_FILE
from qwex_core.errors import BackendError
from qwex_core.store import LOCK_FILE as LOCK_FILE  # where it was first: kept importable
from qwex_core.store import record_lock as record_lock

SOURCES_FILE = "log-sources.json"
"""Where each named source of a stream begins in the run's log: `{stream: [[source, offset]]}`."""
FILES = {"stdout": STDOUT_FILE, "stderr": STDERR_FILE, "index": INDEX_FILE}
"""The run folder's file of each stream a far side may hold."""
RETRY_FIRST = 0.1
RETRY_MOST = 2.0
"""Seconds between two attempts to follow a far side that cannot be followed now, doubling."""


@dataclass(frozen=True)
class LogBytes:
    """Bytes of one log stream as the far side holds them: `data` from byte `offset` on."""

    stream: str
    offset: int
    data: bytes
    at: datetime | None = None
    """When the far side says they were written (its clock); None: when they are copied."""
    source: str | None = None
    """Which of the far side's logs they are of, when it has several one after the other (a
    pod per retry): the first piece of a new source begins it at `offset` (see
    `log_sources`)."""


def log_sources(run_dir: os.PathLike[str] | str, stream: str) -> list[tuple[str, int]]:
    """Where each source (`LogBytes.source`) of `stream` begins in the run's log, in the
    order they began."""
    try:
        with open(os.path.join(run_dir, SOURCES_FILE)) as fh:
            kept = json.load(fh)
    except (OSError, ValueError):
        return []
    found = kept.get(stream) if isinstance(kept, dict) else None
    return [(str(s), int(o)) for s, o in found or [] if isinstance(o, int)]


class LogCopy:
    """The run's log files, open for appending what the far side holds. Use under
    `record_lock` (only one copy appends at a time)."""

    def __init__(self, run_dir: Path, streams: Sequence[str]) -> None:
        unknown = [s for s in streams if s not in FILES]
        if unknown:
            raise ValueError(f"unknown log streams {unknown}: known are {sorted(FILES)}")
        self.streams = tuple(streams)
        self._dir = run_dir
        self._fds: dict[str, int] = {}
        self._index: int | None = None
        self._sources: dict[str, list[tuple[str, int]]] | None = None

    def __enter__(self) -> LogCopy:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        try:
            for stream in self.streams:
                self._fds[stream] = os.open(self._dir / FILES[stream], flags, 0o644)
            if "index" not in self.streams:  # the far side keeps none: index each copy here
                self._index = os.open(self._dir / INDEX_FILE, flags, 0o644)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for fd in [*self._fds.values(), *([self._index] if self._index is not None else [])]:
            os.close(fd)
        self._fds.clear()
        self._index = None

    def size(self, stream: str) -> int:
        """Bytes of `stream` copied so far: where the next copy goes on."""
        return os.fstat(self._fds[stream]).st_size

    def append(self, piece: LogBytes) -> bool:
        """Append what of `piece` the copy lacks; False when it starts past the copy's end
        (a gap: ask the far side from `size` first)."""
        have = self.size(piece.stream)
        if piece.offset > have:
            return False
        data = piece.data[have - piece.offset :]
        if not data:
            return True
        if piece.source is not None:
            self._begin(piece)  # before the bytes: no byte of a source it does not know
        _write_all(self._fds[piece.stream], data)
        code = STREAM_CODES.get(piece.stream)
        if self._index is not None and code is not None:  # after the bytes, as the agent does
            at = time.time_ns() if piece.at is None else _ns(piece.at)
            os.write(self._index, index_record(at, code, have, len(data)))
        return True

    def _begin(self, piece: LogBytes) -> None:
        """Keep where `piece.source` begins, the first time a piece of it is appended."""
        if self._sources is None:
            self._sources = {s: log_sources(self._dir, s) for s in self.streams}
        kept = self._sources.setdefault(piece.stream, [])
        if any(source == piece.source for source, _ in kept):
            return
        kept.append((str(piece.source), piece.offset))
        tmp = self._dir / f".{SOURCES_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({s: [list(e) for e in v] for s, v in self._sources.items()}))
        os.replace(tmp, self._dir / SOURCES_FILE)


Follow = Callable[[Mapping[str, int]], "Iterator[LogBytes | None] | None"]


class Pusher:
    """A thread appending a far side's pushed log to a run's log files while someone follows
    the run in this process, waking them (`changed`) at each piece and each change."""

    def __init__(
        self, run_dir: Path, streams: Sequence[str], follow: Follow, ended: Callable[[], bool]
    ) -> None:
        self.changed = threading.Event()
        self.problem: str | None = None
        """Why following stopped for good (an error of the backend's), for the next look."""
        self._dir = run_dir
        self._streams = tuple(streams)
        self._follow = follow
        self._ended = ended
        self._stop = threading.Event()
        self._events = follow(self.offsets())
        self._thread = threading.Thread(target=self._main, daemon=True, name="qwex-log-push")

    @property
    def pushes(self) -> bool:
        """Whether the far side pushes at all (else nothing to follow: never started)."""
        return self._events is not None

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()

    def offsets(self) -> dict[str, int]:
        """Each stream's bytes copied so far."""
        with record_lock(self._dir), LogCopy(self._dir, self._streams) as copy:
            return {s: copy.size(s) for s in self._streams}

    def _main(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a thread's traceback would land in the user's terminal
            if not self._stop.is_set():
                self.problem = f"following its log stopped: {type(exc).__name__}: {exc}"
        finally:
            self.changed.set()

    def _loop(self) -> None:
        delay = RETRY_FIRST
        events = self._events
        while not self._stop.is_set():
            try:
                if events is None:
                    events = self._follow(self.offsets())
                if events is None:
                    return
                if self._take(events):
                    delay = RETRY_FIRST  # it worked, then was cut: follow again soon
            except BackendError:
                pass  # cannot be followed now: again after a pause
            finally:
                _close(events)
                events = None
            if self._ended():
                return
            self.changed.set()  # let the waiter look: the run may have changed
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MOST)

    def _take(self, events: Iterator[LogBytes | None]) -> bool:
        """Append what `events` bring until they end or skip ahead; whether any came."""
        got = False
        for item in events:
            if self._stop.is_set():
                break
            if item is not None:
                with record_lock(self._dir), LogCopy(self._dir, self._streams) as copy:
                    if not copy.append(item):
                        break  # a gap: follow again from what is copied
                got = True
            self.changed.set()
        return got


def _ns(at: datetime) -> int:
    """`at` in nanoseconds since the epoch, exactly (a float product is off by up to 1 µs)."""
    return int(at.replace(microsecond=0).timestamp()) * 1_000_000_000 + at.microsecond * 1000


def _close(events: object) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
