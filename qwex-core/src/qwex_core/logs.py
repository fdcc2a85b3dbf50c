"""Reading and following a run's log files, which outlive any container or pod."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from qwex_core.models import Run

CHUNK = 1 << 20
FAST_POLL = 0.01
FAST_POLL_FOR = 2.0


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


class LogFollower:
    """Copies new bytes from a run's log files to sinks; call `pump` until it says nothing is new."""

    def __init__(
        self,
        paths: dict[str, str | os.PathLike[str]],
        sinks: Mapping[str, BinaryIO],
        tail: int | None = None,
    ) -> None:
        self.files: dict[str, BinaryIO] = {}
        self.sinks = sinks
        for stream, path in paths.items():
            try:
                fh = open(path, "rb")  # noqa: SIM115 - kept open while following
            except FileNotFoundError:
                continue
            fh.seek(tail_offset(fh, tail) if tail is not None else 0)
            self.files[stream] = fh

    def pump(self) -> int:
        """Copy whatever is new; return how many bytes moved."""
        moved = 0
        for stream, fh in self.files.items():
            while data := fh.read(CHUNK):
                sink = self.sinks[stream]
                sink.write(data)
                sink.flush()
                moved += len(data)
        return moved

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()

    def follow(
        self,
        poll: Callable[[], Run],
        pause: Callable[[float], None] = time.sleep,
        *,
        max_sleep: float = 0.1,
    ) -> Run:
        """Pump until `poll()` returns a final run, then drain what is left and return it.
        Files stay open (the caller closes), so following can resume after an interruption.

        Polls often for the first seconds (short runs end fast; a poll is a small file
        read), then back off to `max_sleep`."""
        delay = 0.002
        started = time.monotonic()
        while True:
            if self.pump():
                delay = 0.002
                continue
            run = poll()
            if run.is_final:
                self.pump()
                return run
            pause(delay)
            ceiling = FAST_POLL if time.monotonic() - started < FAST_POLL_FOR else max_sleep
            delay = min(delay * 2, ceiling)
