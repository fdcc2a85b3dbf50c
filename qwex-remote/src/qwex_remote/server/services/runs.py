"""What the dashboard's pages show: runs filtered and paged, one run's history, the queue.

The pages are rendered from these plain values (`pages.py`); every value a job chose (its
name, command, labels, reason, output) stays a string here and is escaped by the template.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qwex_core.models import RunStatus

from qwex_remote.server.logfiles import log_size, read_range
from qwex_remote.server.schemas import JobInfo
from qwex_remote.server.services.jobs import MAX_SEQ, info, job
from qwex_remote.server.state import ServerState
from qwex_remote.server.store import FINAL, now
from qwex_remote.server.tables import Job

PAGE = 50
MAX_PAGE = 200
"""Rows of one page at most, whatever the URL asks: the page never holds every run."""
MAX_POLLED = 200
"""Ids one status poll may ask about (a page's worth)."""
MAX_WAITING = 500
"""Waiting jobs the queue page lists (those waiting longest); it says so when it is full."""
TAIL = 256 << 10
"""Bytes of each stream a run's page starts from at most: a long log is followed from its
last part (the whole is a download), so the page never holds gigabytes."""
RECORD = "run.json"
MAX_RECORD = 1 << 20
"""A run record larger than this is not read (the job can write its own record's folder)."""
STATUSES = [s.value for s in RunStatus]


@dataclass(frozen=True)
class Filters:
    """The runs page's filters, as the URL gives them (kept there, so a view can be shared)."""

    status: str = ""
    backend: str = ""
    submitter: str = ""
    label: str = ""
    q: str = ""
    cursor: str = ""
    limit: int = PAGE
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        """Filters from the query string; a value that cannot filter is dropped and said so
        on the page (never an error page for a hand-edited URL)."""
        problems = []
        status = query.get("status", "").strip()
        if status and status not in STATUSES:
            problems.append(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
            status = ""
        label = query.get("label", "").strip()
        if label and "=" not in label:
            problems.append(f"the label filter {label!r} is not KEY=VALUE")
            label = ""
        cursor = query.get("cursor", "").strip()
        if cursor and not cursor.isdigit():
            cursor = ""
        try:
            limit = min(max(int(query.get("limit", PAGE)), 1), MAX_PAGE)
        except ValueError:
            limit = PAGE
        return cls(
            status=status,
            backend=query.get("backend", "").strip()[:64],
            submitter=query.get("submitter", "").strip()[:64],
            label=label[:1300],
            q=query.get("q", "").strip()[:200],
            cursor=cursor,
            limit=limit,
            problems=tuple(problems),
        )

    def query(self, **changes: Any) -> dict[str, str]:
        """The filters as a query string's parameters (empty ones left out), with `changes`."""
        values = {
            "status": self.status,
            "backend": self.backend,
            "submitter": self.submitter,
            "label": self.label,
            "q": self.q,
            "limit": str(self.limit) if self.limit != PAGE else "",
            "cursor": self.cursor,
            **changes,
        }
        return {k: str(v) for k, v in values.items() if v}


@dataclass(frozen=True)
class RunRow:
    id: str
    short: str
    name: str
    submitter: str
    backend: str
    status: str
    reason: str
    queued_for: str
    ran_for: str
    command: str
    final: bool
    cancel_requested: bool


@dataclass
class RunsPage:
    rows: list[RunRow]
    next_cursor: str | None


def short_id(job_id: str) -> str:
    """The last 12 hex digits of a UUIDv7, as `qwex list` shows a run."""
    return job_id.replace("-", "")[-12:]


def duration(seconds: float | None) -> str:
    """`4.2 s`, `3 min 5 s`, `2 h 7 min`, `3 d 4 h`; empty when unknown."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def command_text(command: Sequence[str]) -> str:
    return shlex.join(str(part) for part in command)


def row(job: JobInfo) -> RunRow:
    """A run as the runs page shows it (also the values a status poll returns)."""
    spec = job.spec
    at = now()
    started = job.started_at
    return RunRow(
        id=job.id,
        short=short_id(job.id),
        name=str(spec.get("name") or ""),
        submitter=job.submitter,
        backend=job.backend,
        status=job.status.value,
        reason=job.reason or "",
        queued_for=duration(_seconds(job.created_at, started or job.finished_at or at)),
        ran_for=duration(_seconds(started, job.finished_at or at) if started else None),
        command=command_text(spec.get("command") or []),
        final=job.status.value in FINAL,
        cancel_requested=job.cancel_requested,
    )


def runs(state: ServerState, filters: Filters) -> RunsPage:
    """One page of runs, newest first, as `filters` say."""
    key, _, value = filters.label.partition("=")
    items = state.store.list_jobs(
        statuses=[filters.status] if filters.status else (),
        backend=filters.backend or None,
        submitter=filters.submitter or None,
        before=min(int(filters.cursor), MAX_SEQ) if filters.cursor else None,
        limit=filters.limit + 1,
        label=(key, value) if filters.label else None,
        text=filters.q or None,
    )
    more = len(items) > filters.limit
    items = items[: filters.limit]
    rows = [row(JobInfo.model_validate(item)) for item in items]
    return RunsPage(rows, str(items[-1]["seq"]) if more else None)


def statuses(state: ServerState, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What changes on a page while a run goes on, for each of `ids` that exists."""
    wanted = [i for i in ids if len(i) <= 64][:MAX_POLLED]
    if not wanted:
        return {}
    items = state.store.list_jobs(ids=wanted, limit=len(wanted))
    out = {}
    for item in items:
        shown = row(JobInfo.model_validate(item))
        out[shown.id] = {
            "status": shown.status,
            "reason": shown.reason,
            "queued_for": shown.queued_for,
            "ran_for": shown.ran_for,
            "final": shown.final,
            "cancel_requested": shown.cancel_requested,
        }
    return out


@dataclass(frozen=True)
class Step:
    """One entry of a run's history: the status it entered, when, and why."""

    status: str
    at: datetime | None
    reason: str


@dataclass
class RunDetail:
    row: RunRow
    info: JobInfo
    timeline: list[Step]
    spec: dict[str, Any]
    resources: dict[str, str]
    labels: dict[str, str]
    queue: str
    has_logs: bool
    starts: dict[str, int]
    """Where the page starts following each stream (its last `TAIL` bytes)."""


def record(found: Job) -> dict[str, Any]:
    """The run record core keeps in the job's folder (its history, the backend's data), read
    without following a link; empty when there is none or it cannot be read."""
    if not found.stdout_path or not found.job_dir:
        return {}
    path = os.path.join(os.path.dirname(found.stdout_path), RECORD)
    data, _, size = read_range(found.job_dir, path, 0, MAX_RECORD)
    if not data or size > MAX_RECORD:
        return {}
    try:
        loaded = json.loads(data)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def timeline(found: JobInfo, kept: dict[str, Any]) -> list[Step]:
    """Submitted to the server, then each status the run entered with its reason (from the
    run record); from the job's row alone when the record is gone (or never was)."""
    steps = [Step("submitted", found.created_at, f"by {found.submitter}")]
    history = kept.get("history")
    if isinstance(history, list) and history:
        for entry in history:
            if isinstance(entry, dict):
                steps.append(
                    Step(
                        str(entry.get("status", "?")),
                        _when(entry.get("at")),
                        str(entry.get("reason") or ""),
                    )
                )
        return steps
    if found.started_at:
        steps.append(Step("running", found.started_at, ""))
    if found.status.value in FINAL:
        steps.append(Step(found.status.value, found.finished_at, found.reason or ""))
    elif not found.started_at:
        steps.append(Step(found.status.value, None, found.reason or ""))
    return steps


def detail(state: ServerState, job_id: str) -> RunDetail:
    """One run (404 when there is none)."""
    found = job(state, job_id)
    shown = info(found)
    kept = record(found)
    spec = dict(found.spec)
    resources = {k: str(v) for k, v in (spec.get("resources") or {}).items() if v is not None}
    data = kept.get("backend_data")
    backend_data = data if isinstance(data, dict) else {}
    return RunDetail(
        row=row(shown),
        info=shown,
        timeline=timeline(shown, kept),
        spec=spec,
        resources=resources,
        labels={str(k): str(v) for k, v in (spec.get("labels") or {}).items()},
        queue=str(backend_data.get("queue") or ""),
        has_logs=bool(found.stdout_path),
        starts={
            stream: max(0, log_size(found.job_dir, path) - TAIL)
            for stream, path in (("stdout", found.stdout_path), ("stderr", found.stderr_path))
        },
    )


@dataclass
class Waiting:
    row: RunRow
    why: str
    waited: float


@dataclass
class QueueGroup:
    backend: str
    queue: str
    jobs: list[Waiting]


@dataclass
class QueueView:
    groups: list[QueueGroup]
    shown: int
    busy: int
    slots: int


def queue(state: ServerState) -> QueueView:
    """What waits, grouped by backend and queue, the longest waiting first, and why: the
    server's own queue (no free worker slot yet), or the backend's (Kueue's reason)."""
    waiting = state.store.waiting(MAX_WAITING)
    busy = state.store.running_count()
    slots = state.settings.concurrency
    groups: dict[tuple[str, str], QueueGroup] = {}
    at = now()
    for found in waiting:
        shown = info(found)
        if found.claimed_by is None:
            where = "the qwex server"
            why = found.reason or (
                f"waiting for a free worker slot ({busy} jobs running; each worker "
                f"runs {slots} at a time)"
            )
        else:
            data = record(found).get("backend_data")
            queue_name = data.get("queue") if isinstance(data, dict) else None
            where = str(queue_name or found.backend)
            why = found.reason or f"started; waiting in {found.backend}"
        group = groups.setdefault((found.backend, where), QueueGroup(found.backend, where, []))
        group.jobs.append(Waiting(row(shown), why, (at - shown.created_at).total_seconds()))
    return QueueView(
        sorted(groups.values(), key=lambda g: (g.backend, g.queue)), len(waiting), busy, slots
    )
