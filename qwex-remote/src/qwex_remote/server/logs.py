"""Log reading for the API: byte ranges of a job's log files, and the SSE follow stream.

A job can write its own run folder (a container gets it bind-mounted), so it can
replace its log files with links to any file of the server's user. Every file is
therefore opened from the job's folder one component at a time with `O_NOFOLLOW`,
and must be a regular file: a link, a FIFO or a device reads as no log at all.

Logs are bytes: the API carries them as base64 (`data_b64`), offsets in bytes, so a
client's copy is the server's file byte for byte; `data` beside it is the same bytes
decoded as UTF-8 (invalid bytes replaced), for reading by eye.

The follow stream is a coroutine: it reads the files itself and waits on the server's
one `LogWatch` between reads, holding no thread.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from qwex_remote.server.changes import JobRow, LogWatch
from qwex_remote.server.store import FINAL

STREAMS = ("stdout", "stderr")
KEEPALIVE = 15.0
"""Seconds without an event before a keepalive comment."""
SSE_CHUNK = 256 << 10
"""Most bytes of one `log` event: a long backlog is sent in pieces, the event loop free
between them."""
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def open_log(job_dir: str | None, path: str | None) -> Iterator[int | None]:
    """A descriptor of the regular file `path` inside the job's folder `job_dir`, no link
    followed below `job_dir` (which the server made); None when there is no such file."""
    fd = _open_below(job_dir, path) if job_dir and path else None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _open_below(job_dir: str, path: str) -> int | None:
    try:
        parts = Path(path).relative_to(job_dir).parts
    except ValueError:
        return None
    if not parts or ".." in parts:
        return None
    try:
        folder = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE, dir_fd=folder)
    except OSError:  # missing, a link (ELOOP, ENOTDIR), a FIFO without a writer (ENXIO)
        return None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_range(
    job_dir: str | None, path: str | None, offset: int, limit: int
) -> tuple[bytes, int, int]:
    """(bytes, next_offset, file size) of at most `limit` bytes of the log from `offset`."""
    with open_log(job_dir, path) as fd:
        if fd is None:
            return b"", offset, 0
        size = os.fstat(fd).st_size
        if offset >= size:  # nothing there, and a huge offset would not even seek
            return b"", offset, size
        data = os.pread(fd, min(limit, size - offset), offset)
    return data, offset + len(data), size


def log_size(job_dir: str | None, path: str | None) -> int:
    with open_log(job_dir, path) as fd:
        return 0 if fd is None else os.fstat(fd).st_size


def chunk_fields(data: bytes) -> dict[str, str]:
    """The bytes as the API carries them: exact (base64) and as text for reading by eye."""
    return {
        "data": data.decode("utf-8", "replace"),
        "data_b64": base64.b64encode(data).decode("ascii"),
    }


def event(kind: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def parse_event_id(value: str | None) -> dict[str, int] | None:
    """The offsets in a `Last-Event-ID` (`STDOUT,STDERR`), or None when absent or malformed."""
    if not value:
        return None
    try:
        out, err = (int(v) for v in value.split(","))
    except ValueError:
        return None
    return {"stdout": max(out, 0), "stderr": max(err, 0)}


SHUTDOWN = event("shutdown", {"message": "the server is shutting down; resume later"})


async def follow_events(
    watch: LogWatch, job_id: str, offsets: dict[str, int], keepalive: float = KEEPALIVE
) -> AsyncIterator[str]:
    """SSE events: `log` for output (id = the offsets to resume from), then `end` with the
    final status once the database has it and every byte was sent; `shutdown` when the
    server stops first (resume from the last id)."""
    async with watch.subscribe(job_id) as sub:
        position: dict[str, int] | None = None
        quiet_since = time.monotonic()
        while True:
            sub.changed.clear()  # before looking: a change from now on wakes the wait below
            if watch.stopping.is_set():
                yield SHUTDOWN
                return
            row = sub.row
            if row is None:
                return  # the job is gone from the database
            if row.run_id and row.job_dir:
                final = row.status in FINAL  # seen before the last read: nothing comes after
                if position is None:
                    # An offset past the end names bytes never written: follow from the end.
                    position = {s: min(offsets.get(s, 0), _size(row, s)) for s in STREAMS}
                sent = False
                for stream in STREAMS:
                    piece = _read(row, stream, position)
                    if piece is not None:
                        yield piece
                        sent = True
                if sent:
                    quiet_since = time.monotonic()
                    continue
                if final:
                    yield _end(row, position)
                    return
            elif row.status in FINAL:  # it ended without running (refused, cancelled queued)
                yield event("end", {"status": row.status, "reason": row.reason, "exit_code": None})
                return
            left = keepalive - (time.monotonic() - quiet_since)
            try:
                async with _timeout(left):
                    await sub.changed.wait()
            except TimeoutError:
                # A comment line keeps proxies from closing the stream and shows whether
                # the client is still there; following goes on from the same offsets.
                quiet_since = time.monotonic()
                yield ": keepalive\n\n"


def _timeout(seconds: float) -> Any:
    import asyncio

    return asyncio.timeout(max(seconds, 0))


def _path(row: JobRow, stream: str) -> str | None:
    return row.stdout_path if stream == "stdout" else row.stderr_path


def _size(row: JobRow, stream: str) -> int:
    return log_size(row.job_dir, _path(row, stream))


def _read(row: JobRow, stream: str, position: dict[str, int]) -> str | None:
    """The next `log` event of `stream` from `position` (moved on), or None."""
    start = position[stream]
    data, end, _size = read_range(row.job_dir, _path(row, stream), start, SSE_CHUNK)
    if not data:
        return None
    position[stream] = end
    body = {"stream": stream, "offset": start, "next_offset": end, **chunk_fields(data)}
    return event("log", body, f"{position['stdout']},{position['stderr']}")


def _end(row: JobRow, position: dict[str, int]) -> str:
    body = {"status": row.status, "reason": row.reason, "exit_code": row.exit_code}
    return event("end", body, f"{position['stdout']},{position['stderr']}")
