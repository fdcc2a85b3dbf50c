"""Log reading for the API: byte ranges of a job's log files, and the SSE follow stream.

Both decode UTF-8 without splitting a character: an offset the API hands out is
always a character boundary, so a client resumes exactly where it stopped.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from qwex_core.logs import STREAMS, Chunk

from qwex_remote.server.changes import FolderChanges
from qwex_remote.server.store import FINAL, ServerStore

SSE_POLL = 0.05
"""Most seconds between looks at a queued job; the first looks come sooner (5 ms, doubling):
a job on an idle server starts within a few ms of its submit, and its follower with it."""
KEEPALIVE = 15.0
"""Seconds without an event before a keepalive comment."""


def decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def read_range(path: str | None, offset: int, limit: int) -> tuple[str, int, int]:
    """(text, next_offset, file size) of at most `limit` bytes of `path` from `offset`."""
    if not path:
        return "", offset, 0
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if offset >= size:  # nothing there, and a huge offset would not even seek
                return "", offset, size
            fh.seek(offset)
            data = fh.read(limit)
    except FileNotFoundError:
        return "", offset, 0
    dec = decoder()
    text = dec.decode(data, final=len(data) < limit and offset + len(data) >= size)
    pending = len(dec.getstate()[0])
    return text, offset + len(data) - pending, size


class _Quiet(Exception):
    """Nothing was sent for `KEEPALIVE` seconds."""


class Stopped(Exception):
    """The follower must stop: its client went away or the server is shutting down."""


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


def follow_events(
    store: ServerStore,
    job_id: str,
    offsets: dict[str, int],
    stopped: Callable[[], bool],
    service_for: Callable[[Any], Any],
    keepalive: float = KEEPALIVE,
) -> Iterator[str]:
    """SSE events: `log` for output (id = the offsets to resume from), then `end` with the
    final status; `shutdown` when the server stops first (resume from the last id)."""
    waiting_since = time.monotonic()
    delay = 0.005
    while True:
        job = store.get(job_id)
        if job is None:
            return
        if job.run_id or job.status in FINAL:
            break
        if stopped():
            yield event("shutdown", {"message": "the server is shutting down; resume later"})
            return
        if time.monotonic() - waiting_since > keepalive:  # still in the queue
            waiting_since = time.monotonic()
            yield ": keepalive\n\n"
        time.sleep(delay)
        delay = min(delay * 2, SSE_POLL)
    if not job.run_id or not job.job_dir:
        yield event("end", {"status": job.status, "reason": job.reason, "exit_code": None})
        return

    service = service_for(job)
    # An offset past the end names bytes that were never written: follow from the end.
    position = {s: min(offsets.get(s, 0), _size(service, job.run_id, s)) for s in STREAMS}
    with _changes(service, job) as changes:
        wait = changes.wait if changes is not None else None
        yield from _stream(service, job.run_id, position, stopped, keepalive, wait)


def _changes(service: Any, job: Any) -> FolderChanges | contextlib.nullcontext[None]:
    """A watch on the run's folder when its runner only sleeps between polls (local: its
    agent writes that folder on this host). A runner with a wait of its own (Docker's
    quick looks at the bind-mounted folder, Kubernetes' log stream) is left to it."""
    from qwex_core.errors import BackendError
    from qwex_core.runners.base import Runner
    from qwex_core.runners.local import LocalRunner

    try:
        runner = service.runner(job.backend)
    except BackendError:
        return contextlib.nullcontext()
    # The local runner wakes only for children of its own process: never the worker's.
    if type(runner).wait_for_change not in (Runner.wait_for_change, LocalRunner.wait_for_change):
        return contextlib.nullcontext()
    return FolderChanges(service.store.run_dir(job.run_id))


def _stream(
    service: Any,
    run_id: str,
    position: dict[str, int],
    stopped: Callable[[], bool],
    keepalive: float,
    wait: Callable[[float], None] | None,
) -> Iterator[str]:
    """The `log` events of a started run from `position`, then its `end`."""
    from qwex_core.follow import follow

    quiet_since = time.monotonic()

    def on_status(_run: Any) -> None:
        if stopped():
            raise Stopped
        if time.monotonic() - quiet_since > keepalive:
            raise _Quiet

    while True:
        decoders = {s: decoder() for s in STREAMS}
        try:
            for item in follow(
                service, run_id, offsets=position.copy(), on_status=on_status, wait=wait
            ):
                quiet_since = time.monotonic()
                if isinstance(item, Chunk):
                    dec = decoders[item.stream]
                    text = dec.decode(item.data)
                    start = position[item.stream]
                    position[item.stream] = item.offset + len(item.data) - len(dec.getstate()[0])
                    if text:
                        data = {
                            "stream": item.stream,
                            "offset": start,
                            "next_offset": position[item.stream],
                            "data": text,
                        }
                        yield event("log", data, f"{position['stdout']},{position['stderr']}")
                    if stopped():
                        raise Stopped
                else:
                    end: dict[str, Any] = {"status": item.status.value, "reason": item.reason}
                    end["exit_code"] = item.exit_code
                    yield event("end", end, f"{position['stdout']},{position['stderr']}")
            return
        except _Quiet:
            # A comment line keeps proxies from closing the stream and shows whether the
            # client is still there; following goes on from the same offsets.
            quiet_since = time.monotonic()
            yield ": keepalive\n\n"
        except Stopped:
            yield event("shutdown", {"message": "the server is shutting down; resume later"})
            return


def _size(service: Any, run_id: str, stream: str) -> int:
    try:
        return int(service.store.log_path(run_id, stream).stat().st_size)
    except FileNotFoundError:
        return 0


def stop_flag(*events: threading.Event) -> Callable[[], bool]:
    return lambda: any(e.is_set() for e in events)
