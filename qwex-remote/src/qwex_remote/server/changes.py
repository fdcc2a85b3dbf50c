"""Waking a log stream the moment a run's files change, instead of at its next poll.

Core's follow polls the run's folder, every 10 ms for 2 s and then every 100 ms,
so a line printed late in a run waited up to 100 ms on the server alone. On
Linux an inotify watch on the run's folder ends the wait at the first write to
a log or the record; the poll stays as the fallback, and where inotify is
missing the wait is a plain sleep. Used for runners whose own wait is a sleep.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any


class FolderChanges:
    """`wait(seconds)` returns when a file in `folder` is written, created or replaced, or
    after `seconds`."""

    def __init__(self, folder: Path) -> None:
        self._watch: Any = None
        try:
            from inotify_simple import INotify, flags
        except ImportError:  # not Linux: poll only
            return
        try:
            watch = INotify()
        except OSError:  # out of inotify instances (fs.inotify.max_user_instances)
            return
        try:
            mask = flags.MODIFY | flags.CLOSE_WRITE | flags.CREATE | flags.MOVED_TO
            watch.add_watch(str(folder), mask)
        except OSError:
            watch.close()
            return
        self._watch = watch

    def wait(self, seconds: float) -> None:
        if self._watch is None:
            time.sleep(seconds)
            return
        self._watch.read(timeout=max(1, round(seconds * 1000)))

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def __enter__(self) -> FolderChanges:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()
