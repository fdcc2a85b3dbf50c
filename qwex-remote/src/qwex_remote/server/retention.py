"""Job folders emptied after `server.job_retention`: the run record and logs are kept.

A final job's folder, `DATA_DIR/jobs/<id>/`, holds its snapshot unpacked and whatever
the job wrote; a snapshot may unpack to a gigabyte for every job naming it. After the
retention everything in it is removed but `.qwex/runs/<run id>/` (the run record,
`stdout`, `stderr`, the write-order index), which the server reads to serve the job's
logs and end.

The worker sweeps from its own thread at most once every `period` seconds. Each sweep
asks the database for this worker's jobs that became final since the last sweep (less
a margin for ends recorded late), so a sweep costs one query and a few directory reads,
not a walk over every folder; the first sweep after a start looks at every old job once.
Removal works on open directory descriptors and never follows a link a job planted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from qwex_remote.server.store import FINAL, aware, now
from qwex_remote.server.tables import Job

if TYPE_CHECKING:
    from qwex_remote.server.store import ServerStore

log = logging.getLogger("qwex.server")
MARGIN = timedelta(minutes=10)
"""Ends recorded up to this long after the time they carry are still swept."""
BUDGET = 2.0
"""Seconds of removal per sweep at most: the worker has jobs to start and follow."""


def sweep_period(retention: float) -> float:
    """How often to sweep: a quarter of the retention, between 0.5 s and a minute."""
    return min(60.0, max(0.5, retention / 4))


@dataclass
class Sweeper:
    store: ServerStore
    worker: str
    retention: float
    _next: float = 0.0
    _swept_until: datetime | None = None
    _recent: dict[str, datetime] = field(default_factory=dict)
    """Jobs emptied within MARGIN of `_swept_until`: not looked at again."""

    def maybe_sweep(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + sweep_period(self.retention)
        self.sweep()

    def sweep(self) -> int:
        """Empty the folders of this worker's jobs final for longer than the retention;
        returns how many were looked at."""
        cutoff = now() - timedelta(seconds=self.retention)
        since = None if self._swept_until is None else self._swept_until - MARGIN
        query = select(Job.id, Job.job_dir, Job.run_id, Job.finished_at).where(
            Job.claimed_by == self.worker,
            Job.status.in_(FINAL),
            Job.job_dir.is_not(None),
            Job.finished_at <= cutoff,
        )
        if since is not None:
            query = query.where(Job.finished_at > since)
        with self.store.sessions() as session:
            rows = session.execute(query.order_by(Job.finished_at)).all()
        deadline, done = time.monotonic() + BUDGET, 0
        reached = cutoff
        for job_id, job_dir, run_id, stamp in rows:
            finished = aware(stamp) or cutoff
            if job_id in self._recent:
                continue
            if time.monotonic() > deadline:
                reached = finished  # the rest next time
                break
            try:
                removed = empty_job_dir(str(job_dir), run_id)
            except OSError as exc:
                log.warning("job %s: cannot remove the files of its folder: %s", job_id, exc)
            else:
                if removed:
                    log.info(
                        "job %s: removed %d entries of its folder (retention)", job_id, removed
                    )
            self._recent[job_id] = finished
            done += 1
        self._swept_until = reached
        floor = reached - MARGIN
        self._recent = {k: v for k, v in self._recent.items() if v > floor}
        return done


def empty_job_dir(job_dir: str, run_id: str | None) -> int:
    """Remove everything in `job_dir` but `.qwex/runs/<run_id>/`; returns the entries
    removed. Entries are removed by name relative to open directories (never through a
    link), and a kept name that is not a real directory is removed too."""
    keep = [".qwex", "runs", run_id]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(job_dir, flags)
    except FileNotFoundError:
        return 0
    removed, fds = 0, [fd]
    try:
        for name in keep:
            for entry in os.scandir(fd):
                if entry.name != name:
                    _remove(fd, entry.name)
                    removed += 1
            if name is None:
                break
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                break
            if not stat.S_ISDIR(st.st_mode):
                _remove(fd, name)
                removed += 1
                break
            fd = os.open(name, flags, dir_fd=fd)
            fds.append(fd)
    finally:
        for each in fds:
            with contextlib.suppress(OSError):
                os.close(each)
    return removed


def _remove(dir_fd: int, name: str) -> None:
    """Remove `name` in the directory `dir_fd`: a folder with its contents (shutil's
    descriptor-based rmtree, which does not follow links), anything else unlinked."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
