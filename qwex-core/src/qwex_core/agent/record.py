"""The on-disk run record shared by the agent and the host.

A run directory holds `run.json` (the record, always replaced atomically),
`stdout.log`, `stderr.log`, and small marker files. After the agent has
started, it is the only writer of `run.json` until the run is final.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from datetime import UTC, datetime

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the agent does not import typing
if TYPE_CHECKING:
    from typing import Any

RUN_FILE = "run.json"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
CANCEL_FILE = "cancel"
"""Written by whoever cancels, before signalling: the agent then records
`cancelled` with the file's text as the reason."""
NOTIFIED_FILE = "notified"
"""Created exclusively by the first process that reports the final state to plugins."""

STATUSES = ("pending", "queued", "running", "succeeded", "failed", "cancelled", "lost")
"""Every status a run can have, in the order a run goes through them."""
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "lost"})
UNREADABLE = "unreadable"
"""Not a status: what `qwex list` shows for a run whose `run.json` cannot be read."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds."""
    return datetime.now(UTC).isoformat()


def read_record(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record in `run_dir`, or None when there is none yet. A link in its place (a job
    can write its run folder) is not followed: `ValueError`, as for a record that is not
    JSON."""
    path = os.path.join(run_dir, RUN_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path} is a link, not a run record") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        data = json.loads(fh.read())
    return data if isinstance(data, dict) else None


def write_record(
    run_dir: str | os.PathLike[str], record: dict[str, Any], *, durable: bool = False
) -> None:
    """Replace `run.json` atomically: a reader sees the old or the new record, never half.

    `durable` also fsyncs the file, for final states that must survive a power loss.
    """
    tmp = os.path.join(run_dir, f".{RUN_FILE}.{os.getpid()}.tmp")
    data = json.dumps(record, indent=1, sort_keys=True).encode()
    # The run folder may be writable by the job (a container's bind mount): whatever is at
    # `tmp` (a link it planted to any file of this user) is removed, never written through.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(run_dir, RUN_FILE))


def request_cancel(run_dir: str | os.PathLike[str], reason: str) -> None:
    """Leave the cancel marker (the first reason wins) before signalling the supervisor."""
    try:
        fd = os.open(
            os.path.join(run_dir, CANCEL_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644
        )
    except FileExistsError:
        return
    try:
        os.write(fd, reason.encode())
    finally:
        os.close(fd)


def cancel_reason(run_dir: str | os.PathLike[str]) -> str | None:
    """The reason of a requested cancel, or None when nobody asked for one."""
    try:
        with open(os.path.join(run_dir, CANCEL_FILE)) as fh:
            return fh.read().strip() or "cancelled by user"
    except OSError:
        return None


def transition(record: dict[str, Any], status: str, reason: str | None = None) -> None:
    """Move `record` to `status`, keeping the history of every transition."""
    at = now_iso()
    record["status"] = status
    record["reason"] = reason
    record.setdefault("history", []).append({"status": status, "at": at, "reason": reason})
    if status == "running" and not record.get("started_at"):
        record["started_at"] = at
    if status in FINAL_STATUSES:
        record["finished_at"] = at


def backdate(record: dict[str, Any], at: datetime | str) -> None:
    """Time the last transition when the backend says it happened (a pod's start, a
    server's end), not when a qwex process saw it: never before the transition it follows,
    nor after it was seen here (the clocks may differ)."""
    history = record["history"]
    when = _utc(at)
    if len(history) > 1:
        when = max(when, _utc(history[-2]["at"]))
    text = min(when, _utc(history[-1]["at"])).isoformat()
    history[-1]["at"] = text
    if history[-1]["status"] == "running":
        record["started_at"] = text
    if history[-1]["status"] in FINAL_STATUSES:
        record["finished_at"] = text


def _utc(value: datetime | str) -> datetime:
    """An ISO 8601 time (any offset; none means UTC) or a datetime, as aware UTC."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


TERMINATION_LIMIT = 4096
"""Kubernetes keeps at most 4096 bytes of a container's termination message."""
TERMINATION_KEYS = (
    "id",
    "status",
    "reason",
    "exit_code",
    "signal",
    "created_at",
    "started_at",
    "finished_at",
    "host",
    "history",
)
TRUNCATED = "...[truncated]"


def termination_message(record: dict[str, Any], limit: int = TERMINATION_LIMIT) -> bytes:
    """The final record as compact JSON of at most `limit` bytes: the history goes first,
    then the longest strings (the reason, usually) are cut, marked with `...[truncated]`."""
    kept = {key: record[key] for key in TERMINATION_KEYS if key in record}
    data = _compact(kept)
    if len(data) > limit:
        kept.pop("history", None)
        data = _compact(kept)
    while len(data) > limit:
        key = max(
            (k for k, v in kept.items() if isinstance(v, str) and v),
            key=lambda k: len(kept[k]),
            default=None,
        )
        if key is None:  # nothing left to cut: the bare minimum always fits
            return _compact({"status": record.get("status"), "truncated": True})[:limit]
        text: str = kept[key].removesuffix(TRUNCATED)
        encoded = len(_compact(text))  # a character is 1 to 6 bytes in JSON
        room = encoded - (len(data) - limit) - len(TRUNCATED)
        keep = min(len(text) - 1, len(text) * room // encoded) if room > 0 else 0
        kept[key] = text[:keep] + TRUNCATED if keep > 0 else ""
        data = _compact(kept)
    return data


def write_termination_log(path: str, record: dict[str, Any]) -> None:
    """Write `termination_message(record)` to `path` (replacing what is there)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(termination_message(record))
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
