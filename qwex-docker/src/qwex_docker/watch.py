"""Noticing within a millisecond that the agent wrote a run's record or logs.

The agent in the container writes into the host's run folder (a bind mount).
`qwex run` and `qwex logs -f` read that folder again after each wait; reading
it (the record parsed into a model, the logs) costs far more than looking at
three files' inode, change time and size, which is what a wait does here every
millisecond (every tenth of the wait for the longer waits of a long run), so
the record that ends a short run is read about 1 ms after it was written
instead of up to a poll interval (10 ms) later.

Tried, not kept: inotify. Closing an inotify instance waits for the kernel's
fsnotify grace period, 10-20 ms measured here, paid at the latest when the
process exits: more than it saves on a short run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

STEP = 0.001
LONG_STEP = 0.01
"""Seconds between two looks: `STEP`, up to `LONG_STEP` for the longer waits of a long run
(a tenth of the wait). A look costs about 40 microseconds of CPU with its sleep: 4 % of a
core every millisecond, 0.4 % every 10 ms."""

Look = tuple[tuple[int, int, int] | None, ...]


class Changes:
    """Files whose changes end a wait: changed since the last look, the wait returns."""

    def __init__(self, paths: Iterable[os.PathLike[str] | str]) -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.seen = self.look()

    def look(self) -> Look:
        """Inode, change time and size of each file (None for a missing one): a record
        replaced by rename has a new inode, a log that grew a new size."""
        found: list[tuple[int, int, int] | None] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except OSError:
                found.append(None)
            else:
                found.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(found)

    def wait(self, seconds: float) -> bool:
        """Return once a file changed since the last look (True), or after `seconds` (False)."""
        deadline = time.monotonic() + seconds
        step = min(max(STEP, seconds / 10), LONG_STEP)
        while True:
            now = self.look()
            if now != self.seen:
                self.seen = now
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(step, left))
