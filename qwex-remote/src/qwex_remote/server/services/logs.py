"""A job's output: a byte range of one stream, or the live stream of its events."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Literal

from prometheus_client import Gauge

from qwex_remote.server.logfiles import chunk_fields, read_range
from qwex_remote.server.logs import file_path, follow_events
from qwex_remote.server.schemas import LogChunk
from qwex_remote.server.services.jobs import job
from qwex_remote.server.state import ServerState
from qwex_remote.server.store import FINAL


def chunk(
    state: ServerState,
    job_id: str,
    stream: Literal["stdout", "stderr", "index"],
    offset: int,
    limit: int,
) -> LogChunk:
    """Up to `limit` bytes of `stream` from byte `offset`; `final` once the job has ended
    and nothing is left to read."""
    found = job(state, job_id)
    path = file_path(stream, found.stdout_path, found.stderr_path)
    data, next_offset, size = read_range(found.job_dir, path, offset, limit)
    final = found.status in FINAL and next_offset >= size
    return LogChunk(
        stream=stream,
        offset=offset,
        next_offset=next_offset,
        final=final,
        **chunk_fields(data),
    )


DOWNLOAD_PIECE = 1 << 20


def download(
    state: ServerState, job_id: str, stream: Literal["stdout", "stderr"]
) -> Iterator[bytes]:
    """The whole of one stream as it is now, a piece at a time (the job may still write):
    what the dashboard's download of a log sends. The job is looked up first (404)."""
    found = job(state, job_id)
    path = file_path(stream, found.stdout_path, found.stderr_path)

    def pieces() -> Iterator[bytes]:
        offset = 0
        while True:
            data, offset, _size = read_range(found.job_dir, path, offset, DOWNLOAD_PIECE)
            if not data:
                return
            yield data

    return pieces()


def follow(state: ServerState, job_id: str, offsets: dict[str, int]) -> AsyncIterator[str]:
    """The Server-Sent Events of a job (which exists: look it up first) from `offsets`.
    Called in the server's event loop, where the log watcher lives. Counted in the
    open log streams of /metrics until it ends or its client goes."""
    events = follow_events(
        state.log_watch(), job_id, offsets, keepalive=state.settings.sse_keepalive
    )
    return _counted(events, state.metrics.log_streams)


async def _counted(events: AsyncGenerator[str, None], gauge: Gauge) -> AsyncIterator[str]:
    """`events`, with `gauge` one higher from the first event until the stream is closed
    (at its end, or when its client goes and the server closes it)."""
    try:
        with gauge.track_inprogress():
            async for event in events:
                yield event
    finally:
        await events.aclose()
