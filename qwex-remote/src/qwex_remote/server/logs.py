"""The SSE follow stream of a job's logs (the files are read by `logfiles`, no link followed).

Logs are bytes: the API carries them as base64 (`data_b64`), offsets in bytes, so a
client's copy is the server's file byte for byte; `data` beside it is the same bytes
decoded as UTF-8 (invalid bytes replaced), for reading by eye.

The follow stream is a coroutine: it waits on the server's one `LogWatch` between
reads, holding no thread; the watch looks at a job's files once per change for all of
its followers, and followers at the same offset share the piece read.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from qwex_remote.server.changes import JobRow, LogWatch
from qwex_remote.server.logfiles import FILES, INDEX, STREAMS, index_path
from qwex_remote.server.store import FINAL

KEEPALIVE = 15.0
"""Seconds without an event before a keepalive comment."""


def event(kind: str, data: dict[str, Any], event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def parse_event_id(value: str | None) -> dict[str, int] | None:
    """The offsets in a `Last-Event-ID` (`STDOUT,STDERR`, or `STDOUT,STDERR,INDEX` for a
    client that follows the write-order index too), or None when absent or malformed."""
    if not value:
        return None
    try:
        numbers = [max(int(v), 0) for v in value.split(",")]
    except ValueError:
        return None
    if len(numbers) not in (2, 3):
        return None
    return dict(zip((*STREAMS, INDEX), numbers, strict=False))


def file_path(stream: str, stdout_path: str | None, stderr_path: str | None) -> str | None:
    """Where a job's `stream` (stdout, stderr or the index) is on this host."""
    if stream == INDEX:
        return index_path(stdout_path)
    return stdout_path if stream == "stdout" else stderr_path


def _event_id(position: dict[str, int]) -> str:
    return ",".join(str(position[s]) for s in (*STREAMS, INDEX) if s in position)


SHUTDOWN = event("shutdown", {"message": "the server is shutting down; resume later"})


async def follow_events(
    watch: LogWatch, job_id: str, offsets: dict[str, int], keepalive: float = KEEPALIVE
) -> AsyncGenerator[str, None]:
    """SSE events: `log` for output (id = the offsets to resume from), then `end` with the
    final status once the database has it and every byte was sent; `shutdown` when the
    server stops first (resume from the last id). With an `index` offset, the job's
    write-order index is sent too (as stream `index`, before the output it orders)."""
    streams: Sequence[str] = FILES if INDEX in offsets else STREAMS
    async with watch.subscribe(job_id) as sub:
        position: dict[str, int] | None = None
        quiet_since = time.monotonic()
        while not sub.loaded.is_set():  # its row not read yet (the database may be away)
            try:
                async with _timeout(keepalive):
                    await sub.loaded.wait()
            except TimeoutError:
                yield ": keepalive\n\n"  # the headers are sent: the stream stays alive
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
                sizes = sub.files.sizes  # looked at after the row was loaded
                if position is None:
                    # An offset past the end names bytes never written: follow from the end.
                    position = {s: min(offsets.get(s, 0), sizes[s]) for s in streams}
                sent = False
                for stream in streams:
                    start = position[stream]
                    if start >= sizes[stream]:
                        continue
                    path = file_path(stream, row.stdout_path, row.stderr_path)
                    position[stream], body = sub.files.piece(row.job_dir, path, stream, start)
                    if body:
                        yield f"id: {_event_id(position)}\nevent: log\ndata: {body}\n\n"
                        sent = True
                if sent:
                    quiet_since = time.monotonic()
                    continue
                if final:
                    yield _end(row, position)
                    return
            elif row.status in FINAL:  # it ended without running (refused, cancelled queued)
                yield event(
                    "end",
                    {"status": row.status, "reason": row.reason, "exit_code": None, "signal": None},
                )
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


def _end(row: JobRow, position: dict[str, int]) -> str:
    body = {
        "status": row.status,
        "reason": row.reason,
        "exit_code": row.exit_code,
        "signal": row.signal,
    }
    return event("end", body, _event_id(position))
