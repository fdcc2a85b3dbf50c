"""What `qwex list` shows of each final run, kept in one file so that listing 10,000 runs
does not open, read and parse 10,000 JSON records (parsing them is most of its cost).

`.qwex/runs.rows` maps a run id to the identity of its `run.json` (inode, mtime in ns,
size) and the fields of the record that `qwex list` shows and filters on, as one JSON
list a run (a list of short lists parses ten times faster than as many records). It is a
copy: an entry is used only while `run.json` still has that
identity (every write replaces the file, so a record rewritten since has another inode);
otherwise the record is read and the entry replaced. Only final runs whose end the plugins
have been told of are kept. Losing or damaging the file costs one slower listing.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qwex_core.agent.record import FINAL_STATUSES, NOTIFIED_FILE
from qwex_core.store import short_id

CACHE_FILE = "runs.rows"
FIELDS = ("short_id", "status", "backend")
SPEC_FIELDS = ("name", "labels")
TIMES = ("created_at", "started_at", "finished_at")
LOAD_AFTER = 100
"""Records read one by one before the cache is loaded: a short listing (`-n 20`) never
pays for loading it."""
VERSION = 3
"""2: the command as its shell text and the times as microseconds since the epoch, which is
how `qwex list` shows them (quoting 10,000 commands and parsing 30,000 ISO times was a
quarter of a listing's CPU, measured with cProfile over 10,000 cached runs). 3: without
what the key or nothing shown gives (the id, a short id that is the id's tail, the reason):
185 bytes a row instead of 247 (`qwex list` of 10,000 runs: 138.3 against 139.9 ms,
medians of 15 alternated runs)."""
Identity = tuple[int, int, int]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def shell_text(command: list[str]) -> str:
    """A command as a shell would take it back (a single word as it is)."""
    if len(command) == 1:
        return command[0]
    import shlex

    return shlex.join(command)


def micros(value: Any) -> int | None:
    """An ISO time with its offset as microseconds since the epoch (`since_epoch`); None for
    None. Raises ValueError for anything else, a time without an offset included."""
    if value is None:
        return None
    when = datetime.fromisoformat(value) if isinstance(value, str) else None
    if when is None or when.tzinfo is None:
        raise ValueError(f"not a time with an offset: {value!r}")
    return since_epoch(when)


def since_epoch(when: datetime) -> int:
    """Microseconds since the epoch, exactly: a difference of two divided by 1e6 is what
    `timedelta.total_seconds()` gives, to the last digit."""
    return (when - EPOCH) // timedelta(microseconds=1)


def row(run_id: str, record: dict[str, Any]) -> list[Any] | None:
    """The fields of `record` that `qwex list` shows and filters on, as a list; None when
    it lacks one or one is not as `qwex list` shows it (such a record is not cached: read
    every time)."""
    spec = record["spec"]
    if not all(k in record for k in (*FIELDS, *TIMES)) or not all(k in spec for k in SPEC_FIELDS):
        return None
    command = spec.get("command")
    if type(command) is not list or not command or not all(type(a) is str for a in command):
        return None
    if record.get("id") != run_id:
        return None
    try:
        times = [micros(record[k]) for k in TIMES]
    except ValueError:
        return None
    short = None if record["short_id"] == short_id(run_id) else record["short_id"]
    shown = [record[k] for k in FIELDS[1:]] + [spec[k] for k in SPEC_FIELDS]
    return [short, *shown, shell_text(command), *times]


class CachedRow(dict[str, Any]):
    """A record-like dict made from a cached row: a final run whose end the plugins were
    told of (only such runs are cached). It holds `id`, `short_id`, `status`, `backend`
    and `spec` (`name`, `labels`) as a record does, and instead of the command and the
    times, `command_text` and `created_us`, `started_us`, `finished_us`."""


def as_record(run_id: str, values: list[Any]) -> CachedRow:
    """The record-like dict of a cached row (keywords, not zips: a fifth of the time over
    10,000 rows, timed with timeit)."""
    short, status, backend, name, labels, text, created, started, finished = values
    return CachedRow(
        id=run_id,
        short_id=short or short_id(run_id),
        status=status,
        backend=backend,
        spec={"name": name, "labels": labels},
        command_text=text,
        created_us=created,
        started_us=started,
        finished_us=finished,
    )


class RowCache:
    """The cache of one runs folder, loaded on demand, written back when it changed."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.path = str(root.parent / CACHE_FILE)
        self.entries: dict[str, list[Any]] | None = None
        self.changed = False
        self.reads = 0
        self.seen: set[str] = set()

    def lookup(self, run_id: str, identity: Identity) -> dict[str, Any] | None:
        """The cached row of `run_id` if its record still has `identity`."""
        self.seen.add(run_id)
        if self.entries is None:
            if self.reads < LOAD_AFTER:
                return None
            self.entries = self._load()
        entry = self.entries.get(run_id)
        if entry is None or tuple(entry[:3]) != identity:
            return None
        return as_record(run_id, entry[3:])

    def read(self, run_id: str, identity: Identity, record: dict[str, Any]) -> None:
        """A record read from its file: kept if it is final and the plugins were told."""
        self.reads += 1
        if self.entries is None or record.get("status") not in FINAL_STATUSES:
            return
        if not os.path.exists(f"{self.root}/{run_id}/{NOTIFIED_FILE}"):
            return
        values = row(run_id, record)
        if values is not None:
            self.entries[run_id] = [*identity, *values]
            self.changed = True

    def _load(self) -> dict[str, list[Any]]:
        try:
            with open(self.path, "rb") as fh:
                data = json.loads(fh.read())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != VERSION:
            return {}
        entries = data.get("runs")
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items() if _sound(v)}

    def save(self, complete: bool) -> None:
        """Write the cache back (atomically) if it changed, without the runs no longer there
        when the listing was `complete`; a store this user cannot write keeps its cache."""
        if self.entries is None:
            return
        if complete and len(self.entries) > len(self.seen):
            self.entries = {k: v for k, v in self.entries.items() if k in self.seen}
            self.changed = True
        if not self.changed:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(OSError):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o664)
            try:
                data = {"version": VERSION, "runs": self.entries}
                os.write(fd, json.dumps(data, separators=(",", ":")).encode())
            finally:
                os.close(fd)
            os.replace(tmp, self.path)


SIZE = 3 + len(FIELDS) + len(SPEC_FIELDS) + 1 + len(TIMES)


def _sound(entry: Any) -> bool:
    """Whether a cache entry holds what `qwex list` relies on, as `store._load_record`
    checks it of a record (the file is the user's: a job may have written it)."""
    if type(entry) is not list or len(entry) != SIZE:
        return False
    ino, mtime, size, short, status, backend, name, labels, text, *times = entry
    created, started, finished = times
    return (
        type(ino) is type(mtime) is type(size) is int
        and type(status) is type(backend) is type(text) is str
        and (short is None or type(short) is str)
        and (name is None or type(name) is str)
        and type(labels) is dict
        and (created is None or type(created) is int)
        and (started is None or type(started) is int)
        and (finished is None or type(finished) is int)
    )
