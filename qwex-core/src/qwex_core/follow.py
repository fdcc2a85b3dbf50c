"""Following a run: its log output as it is written, then its final record.

One operation for everyone who follows a run: `qwex run` in the foreground,
`qwex logs -f`, the server's log stream and the remote runner. It resumes from
byte offsets, so a follower that was interrupted (Ctrl-C, a dropped connection)
goes on where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from qwex_core.logs import STREAMS, Chunk, LogReader
from qwex_core.timings import mark

if TYPE_CHECKING:
    from qwex_core.models import Run
    from qwex_core.service import RunService

FAST_POLL = 0.01
FAST_POLL_FOR = 2.0
"""Short runs end fast and a poll is a small file read: poll every 10 ms for 2 s."""
SLOW_POLL = 0.1


def follow(
    service: RunService,
    run_id: str,
    *,
    streams: Sequence[str] = STREAMS,
    offsets: Mapping[str, int] | None = None,
    tail: int | None = None,
    since: int | None = None,
    on_status: Callable[[Run], None] | None = None,
    wait: Callable[[float], None] | None = None,
) -> Iterator[Chunk | Run]:
    """Yield the run's log chunks as they are written, from `offsets` (bytes per stream;
    default: the start, or the last `tail` lines of both streams, of those written at `since`
    (ns since the epoch) or later), in the order they were written, then its final record.
    `on_status` is called with the run each time it is observed not final (while no output
    comes), e.g. to show what it waits for. `wait(seconds)` waits for a change between
    polls, returning early if it can (default: the run's runner's `wait_for_change`)."""
    paths = {s: service.store.log_path(run_id, s) for s in streams}
    wait = wait or _waiter(service, run_id)
    delay = 0.002
    started = time.monotonic()
    with LogReader(paths, offsets=offsets, tail=tail, since=since) as reader:
        while True:
            chunks = reader.read()
            if chunks:
                yield from chunks
                delay = 0.002
                continue
            run = service.observe(run_id)
            if run.is_final:
                mark("record-final")
                yield from reader.read(final=True)
                yield run
                return
            if on_status is not None:
                on_status(run)
            wait(delay)
            ceiling = FAST_POLL if time.monotonic() - started < FAST_POLL_FOR else SLOW_POLL
            delay = min(delay * 2, ceiling)


def _waiter(service: RunService, run_id: str) -> Callable[[float], None]:
    """How to wait for a change: the run's runner may be woken early (`RunService.wait_for_change`)."""
    run = service.store.load(run_id)
    return lambda seconds: service.wait_for_change(run, seconds)
