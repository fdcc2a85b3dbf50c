"""One watcher for every open log stream: followers wait on it, never in a thread of their own.

Each follow stream used to hold one of the server's 40 worker threads while it waited,
so about 40 open streams stalled every other route. Now a follower is a coroutine that
waits on an `asyncio.Event`, and one task of the server (`LogWatch`) wakes it:

- when its job's row changes in the database (one query a tick for all followed jobs:
  the worker mirrors each running job's status there every ~50 ms), and
- when a file in its run's folder is written (one inotify descriptor for all followers,
  read by the event loop itself), so a line reaches a follower within a few ms.

Every backend's output lands in the job's run folder on this host as the worker observes
the run (local and Docker: the agent writes it, bind-mounted for a container; Kubernetes:
the worker's observation copies the pod's log there), so following reads files only.
Without inotify (not Linux, or out of instances) every follower is woken each tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from qwex_remote.server.db import is_outage
from qwex_remote.server.logfiles import INDEX, JobFiles, index_path
from qwex_remote.server.store import ServerStore
from qwex_remote.server.tables import Job

log = logging.getLogger("qwex.server")

TICK = 0.05
"""Seconds between looks at the followed jobs' rows (the worker's own busy tick)."""
FIRST_TICK = 0.005
"""After a new follower or a change of a run's record, the next looks come sooner (5 ms,
doubling up to `TICK`): the status the worker mirrors reaches a follower within a few ms."""
SAFETY = 1.0
"""With inotify, every follower is still woken this often (a missed event costs 1 s)."""
RECORD = "run.json"


def raise_open_files() -> None:
    """Lift the soft limit of open files to the hard one: every follow stream is a socket,
    and a soft limit of 1024 (a common default) would refuse connections at ~1,000."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass(frozen=True)
class JobRow:
    """What a follower needs of its job's row."""

    status: str
    reason: str | None
    exit_code: int | None
    signal: str | None
    run_id: str | None
    job_dir: str | None
    stdout_path: str | None
    stderr_path: str | None


_ROW = select(
    Job.id,
    Job.status,
    Job.reason,
    Job.exit_code,
    Job.signal,
    Job.run_id,
    Job.job_dir,
    Job.stdout_path,
    Job.stderr_path,
)


def load_rows(store: ServerStore, job_ids: Sequence[str]) -> dict[str, JobRow]:
    """The rows of `job_ids`, in one query (a missing job has none)."""
    with store.engine.connect() as connection:
        found = connection.execute(_ROW.where(Job.id.in_(list(job_ids)))).all()
    return {r.id: JobRow(*r[1:]) for r in found}


@dataclass(eq=False)
class Subscription:
    """One follower: `changed` is set when its job's row or log files changed."""

    job_id: str
    files: JobFiles
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    row: JobRow | None = None
    loaded: asyncio.Event = field(default_factory=asyncio.Event)
    folder: str | None = None


def _paths(row: JobRow | None) -> dict[str, str | None]:
    if row is None or not row.run_id:
        return {}
    return {
        "stdout": row.stdout_path,
        "stderr": row.stderr_path,
        INDEX: index_path(row.stdout_path),
    }


class LogWatch:
    """The watcher of one server (made on the first follow, in the server's event loop)."""

    def __init__(self, store: ServerStore, stopping: threading.Event) -> None:
        self.store = store
        self.stopping = stopping
        self._subs: dict[str, set[Subscription]] = {}
        self._files: dict[str, JobFiles] = {}
        """Per followed job: its log files as last looked at, shared by its followers."""
        self._rows: dict[str, JobRow | None] = {}
        self._jobs_in: dict[str, set[str]] = {}
        """Run folder -> the followed jobs whose logs it holds."""
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._notify: Any = None
        self._watches: dict[str, int] = {}
        """Run folder -> inotify watch descriptor; `_folders` is the other way round."""
        self._folders: dict[int, str] = {}
        self._users: dict[str, int] = {}
        self._open_notify()

    @property
    def followers(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[Subscription]:
        """Follow `job_id` until the block ends; `sub.loaded` is set once its row is loaded
        (the database may be away: the follower keeps its stream alive meanwhile)."""
        sub = Subscription(job_id, self._files.setdefault(job_id, JobFiles()))
        self._subs.setdefault(job_id, set()).add(sub)
        self._kick.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="log-watch")
        try:
            yield sub
        finally:
            subs = self._subs.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[job_id]
                    self._files.pop(job_id, None)
                    self._rows.pop(job_id, None)
            self._unwatch(sub)

    # -- the task ----------------------------------------------------------------------

    async def _run(self) -> None:
        delay = FIRST_TICK
        since_all = 0.0
        while self._subs:
            self._kick.clear()
            since_all += delay
            wake_all = self._notify is None or since_all >= SAFETY
            if wake_all:
                since_all = 0.0
            try:
                await self._look(wake_all)
            except Exception:  # never leave the streams without their watcher
                log.exception("log streams: a look at the followed jobs failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            delay = FIRST_TICK if self._kick.is_set() else min(delay * 2, TICK)
        self._task = None

    async def _look(self, wake_all: bool) -> None:
        """Load the followed jobs' rows (one query, in a thread), look at the log files of
        those that changed (or all, `wake_all`), once per job, and wake their followers."""
        try:
            rows = await asyncio.to_thread(load_rows, self.store, list(self._subs))
        except Exception as exc:  # the database is away: followers wait, then look again
            if is_outage(exc):
                self.store.outage.failed(exc)  # one line per outage, said by whoever sees it
            else:
                log.warning("log streams: reading the followed jobs failed: %s", exc)
            rows = None
        stopping = self.stopping.is_set()
        for job_id, subs in list(self._subs.items()):
            new = any(not sub.loaded.is_set() for sub in subs)
            row = self._rows.get(job_id)
            moved = rows is not None and (rows.get(job_id) != row or job_id not in self._rows)
            if moved and rows is not None:
                row = self._rows[job_id] = rows.get(job_id)
            grew = (moved or new or wake_all) and self._files[job_id].look(
                row.job_dir if row else None, _paths(row)
            )
            for sub in subs:
                if stopping or (rows is not None and not sub.loaded.is_set()) or moved:
                    sub.row = row
                    sub.loaded.set()
                    sub.changed.set()
                elif grew:
                    sub.changed.set()
                self._watch(sub)  # once its run has a folder (retried until watched)

    # -- inotify -----------------------------------------------------------------------

    def _open_notify(self) -> None:
        try:
            from inotify_simple import INotify
        except ImportError:  # not Linux: every tick wakes every follower
            return
        try:
            notify = INotify(nonblocking=True)
        except OSError:  # out of inotify instances (fs.inotify.max_user_instances)
            return
        try:
            asyncio.get_running_loop().add_reader(notify.fileno(), self._on_events)
        except (RuntimeError, NotImplementedError):
            notify.close()
            return
        self._notify = notify

    def _watch(self, sub: Subscription) -> None:
        """Watch the run folder of `sub`'s job once it has one."""
        row = sub.row
        if self._notify is None or row is None or not row.stdout_path or sub.folder:
            return
        from inotify_simple import flags

        folder = os.path.dirname(row.stdout_path)
        if folder not in self._watches:
            mask = (
                flags.MODIFY
                | flags.CLOSE_WRITE
                | flags.CREATE
                | flags.MOVED_TO
                | flags.DELETE
                | flags.ATTRIB
                | flags.DONT_FOLLOW
            )
            try:
                wd = self._notify.add_watch(folder, mask)
            except OSError:  # gone, or out of watches: the safety tick wakes it
                return
            self._watches[folder] = wd
            self._folders[wd] = folder
        self._users[folder] = self._users.get(folder, 0) + 1
        self._jobs_in.setdefault(folder, set()).add(sub.job_id)
        sub.folder = folder

    def _unwatch(self, sub: Subscription) -> None:
        folder, sub.folder = sub.folder, None
        if folder is None:
            return
        self._users[folder] -= 1
        if self._users[folder] > 0:
            return
        del self._users[folder]
        self._jobs_in.pop(folder, None)
        wd = self._watches.pop(folder)
        self._folders.pop(wd, None)
        with contextlib.suppress(OSError):
            self._notify.rm_watch(wd)

    def _on_events(self) -> None:
        """Wake the followers of the folders written to (called by the event loop)."""
        try:
            events = self._notify.read(timeout=0)
        except (BlockingIOError, OSError):
            return
        woken: set[str] = set()
        record = False
        for ev in events:
            folder = self._folders.get(ev.wd)
            if folder is not None:
                woken.add(folder)
                record = record or ev.name == RECORD
        for folder in woken:
            for job_id in self._jobs_in.get(folder, ()):
                row, files = self._rows.get(job_id), self._files.get(job_id)
                if files is None or not files.look(row.job_dir if row else None, _paths(row)):
                    continue
                for sub in self._subs.get(job_id, ()):
                    sub.changed.set()
        if record:  # the run's end may be near: the worker mirrors it within a tick
            self._kick.set()

    def close(self) -> None:
        if self._notify is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._notify.fileno())
            self._notify.close()
            self._notify = None
