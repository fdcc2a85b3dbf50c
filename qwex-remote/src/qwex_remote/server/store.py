"""The server's data access: jobs (the queue), tokens and snapshots, on SQLite or PostgreSQL.

The database is the queue. A worker claims the oldest pending job by setting
`claimed_by` where it is still NULL: on PostgreSQL after `SELECT ... FOR UPDATE
SKIP LOCKED` (concurrent workers skip each other's row instead of waiting), on
SQLite with one conditional UPDATE (SQLite serialises writers, and the
`WHERE claimed_by IS NULL` makes a lost race change no row). Either way a job is
run by exactly one worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qwex_core.agent.record import FINAL_STATUSES
from qwex_core.ids import uuid7
from sqlalchemy import (
    Engine,
    Select,
    String,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qwex_remote.server import tokens
from qwex_remote.server.db import Outage, watch
from qwex_remote.server.tables import Job, Secret, Snapshot, Token, WebSession

FINAL = tuple(sorted(FINAL_STATUSES))
"""Core's final statuses, as a sequence for SQL `IN`."""


def _newest(sqlite: bool) -> Select[Any]:
    """Jobs newest first, with what a listed job shows (`JobInfo`'s fields, and `seq`).
    SQLite keeps timestamps as text in UTC without a zone: they are read as that text
    with `+00:00` added, which the response model parses, instead of being parsed here
    and given their zone in Python, row by row."""

    def stamp(column: Any) -> Any:
        return (type_coerce(column, String) + "+00:00").label(column.key) if sqlite else column

    return select(
        Job.seq,
        Job.id,
        Job.submission_id,
        Job.submitter,
        Job.backend,
        Job.status,
        Job.reason,
        Job.exit_code,
        Job.signal,
        stamp(Job.created_at),
        stamp(Job.started_at),
        stamp(Job.finished_at),
        Job.cancel_reason.is_not(None).label("cancel_requested"),
        Job.snapshot,
        Job.spec,
    ).order_by(Job.seq.desc())


_NEWEST = {True: _newest(sqlite=True), False: _newest(sqlite=False)}
"""Built once: building the select cost as much as running it."""
_INSERT_JOB = insert(Job)
_TOKEN_BY_HASH = select(Token.name, Token.role, Token.secret_hash, Token.revoked_at).where(
    Token.secret_hash == bindparam("hash")
)


def _contains(text: str) -> str:
    """A LIKE pattern (escape character `\\`) matching any string that contains `text`."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == tokens.Role.ADMIN

    def may(self, role: str) -> bool:
        """Whether this token's role includes `role` (viewer < user < admin)."""
        return tokens.rank(self.role) >= tokens.rank(role)


class SubmissionConflict(Exception):
    """The submission id was used before by the same submitter for another spec."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class ServerStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self.outage: Outage = watch(self.engine, logging.getLogger("qwex.server"))
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.is_postgres else threading.Lock()
        )

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        """A write transaction. On SQLite, one at a time in this process: SQLite lets one
        writer in and makes the others sleep and retry (1, 2, 5... up to 100 ms), so under
        16 concurrent submits most time went to those sleeps; a lock hands over at once."""
        with self._write_lock, self.sessions.begin() as session:
            yield session

    # -- tokens ------------------------------------------------------------------

    def add_token(self, name: str, role: str) -> str:
        """Create the token `name`; return its secret (shown once, never stored)."""
        tokens.check_name(name)
        secret = tokens.new_secret()
        with self._writing() as session:
            if session.scalar(select(Token).where(Token.name == name)) is not None:
                raise ValueError(
                    f"a token named {name!r} exists already (revoked tokens keep their name); "
                    "choose another name"
                )
            session.add(
                Token(name=name, role=role, secret_hash=tokens.digest(secret), created_at=now())
            )
        return secret

    def put_token(self, name: str, role: str, secret: str, *, exist_ok: bool = False) -> bool:
        """Add the token `name` with a given `secret` (checked as strong as a made one);
        False when it exists already with that very secret and `exist_ok`."""
        tokens.check_name(name)
        tokens.check_secret(secret)
        with self._writing() as session:
            found = session.scalar(select(Token).where(Token.name == name))
            if found is not None:
                if not exist_ok:
                    raise ValueError(
                        f"a token named {name!r} exists already (revoked tokens keep their "
                        "name); choose another name"
                    )
                if not tokens.matches(secret, found.secret_hash):
                    raise ValueError(
                        f"a token named {name!r} exists already with another secret; revoke "
                        "it and give this one another name"
                    )
                return False
            session.add(
                Token(name=name, role=role, secret_hash=tokens.digest(secret), created_at=now())
            )
        return True

    def list_tokens(self) -> list[Token]:
        with self.sessions() as session:
            return list(session.scalars(select(Token).order_by(Token.id)))

    def revoke_token(self, name: str) -> bool:
        """Revoke the token `name` (kept, shown as revoked); False when there is none."""
        with self._writing() as session:
            done = session.execute(
                update(Token)
                .where(Token.name == name, Token.revoked_at.is_(None))
                .values(revoked_at=now())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def has_tokens(self) -> bool:
        """Whether any token can be used (a server without one must stay on loopback)."""
        with self.sessions() as session:
            count = select(func.count()).select_from(Token).where(Token.revoked_at.is_(None))
            return bool(session.scalar(count))

    def authenticate(self, secret: str) -> Principal | None:
        # Every request asks: one statement built once, on a plain connection (5x cheaper
        # than building the query and loading a Token through a session each time).
        with self.engine.connect() as connection:
            token = connection.execute(_TOKEN_BY_HASH, {"hash": tokens.digest(secret)}).first()
        if token is None or token.revoked_at is not None:
            return None
        if not tokens.matches(secret, token.secret_hash):
            return None
        return Principal(token.name, token.role)

    # -- web sessions (the dashboard's signed-in browsers) -----------------------------

    def open_session(self, secret_hash: str, token_name: str, expires_at: datetime) -> None:
        """Record a signed-in browser; sessions that expired go at the same time."""
        with self._writing() as session:
            session.execute(delete(WebSession).where(WebSession.expires_at < now()))
            session.add(
                WebSession(
                    secret_hash=secret_hash,
                    token_name=token_name,
                    created_at=now(),
                    expires_at=expires_at,
                )
            )

    def session_principal(self, secret_hash: str) -> Principal | None:
        """Who a browser is: its session's token, unless the session expired or the token
        was revoked since (its role as it is now)."""
        query = (
            select(Token.name, Token.role, WebSession.expires_at)
            .join(WebSession, WebSession.token_name == Token.name)
            .where(WebSession.secret_hash == secret_hash, Token.revoked_at.is_(None))
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).first()
        if found is None or (aware(found.expires_at) or now()) <= now():
            return None
        return Principal(found.name, found.role)

    def end_session(self, secret_hash: str) -> None:
        with self._writing() as session:
            session.execute(delete(WebSession).where(WebSession.secret_hash == secret_hash))

    # -- secrets (values encrypted by `secrets`; never returned by a route) ------------

    def put_secret(self, name: str, ciphertext: str, *, replace: bool) -> bool:
        """Store the secret `name`; True when it replaced one (only with `replace`)."""
        with self._writing() as session:
            existing = session.scalar(select(Secret).where(Secret.name == name))
            if existing is not None and not replace:
                raise ValueError(
                    f"a secret named {name!r} exists already; pass --replace to change its value"
                )
            if existing is not None:
                existing.ciphertext, existing.updated_at = ciphertext, now()
                return True
            stamp = now()
            session.add(
                Secret(name=name, ciphertext=ciphertext, created_at=stamp, updated_at=stamp)
            )
            return False

    def list_secrets(self) -> list[tuple[str, datetime, datetime]]:
        """Each secret's name, creation and last change (never its value)."""
        with self.sessions() as session:
            rows = session.execute(
                select(Secret.name, Secret.created_at, Secret.updated_at).order_by(Secret.name)
            )
            return [(r.name, aware(r.created_at), aware(r.updated_at)) for r in rows]  # type: ignore[misc]

    def remove_secret(self, name: str) -> bool:
        with self._writing() as session:
            done = session.execute(delete(Secret).where(Secret.name == name))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def secret_names(self, names: set[str]) -> set[str]:
        """Which of `names` exist."""
        if not names:
            return set()
        with self.engine.connect() as connection:
            found = connection.execute(select(Secret.name).where(Secret.name.in_(names)))
            return {row.name for row in found}

    def secret_ciphertexts(self, names: set[str]) -> dict[str, str]:
        if not names:
            return {}
        with self.engine.connect() as connection:
            query = select(Secret.name, Secret.ciphertext).where(Secret.name.in_(names))
            return {row.name: row.ciphertext for row in connection.execute(query)}

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self, sha256: str) -> Snapshot | None:
        with self.sessions() as session:
            return session.get(Snapshot, sha256)

    def add_snapshot(self, sha256: str, size: int, path: str) -> None:
        try:
            with self._writing() as session:
                session.add(Snapshot(sha256=sha256, size=size, path=path, created_at=now()))
        except IntegrityError:
            pass  # uploaded at the same time by another request: the same bytes

    # -- jobs --------------------------------------------------------------------

    def submit(
        self,
        *,
        submitter: str,
        submission_id: str,
        spec: dict[str, Any],
        spec_hash: str,
        backend: str,
        snapshot: str | None,
    ) -> tuple[Job, bool]:
        """The job of this submission, and whether it was created now. Raises
        `SubmissionConflict` when the submission id names another spec."""
        values: dict[str, Any] = {
            "id": uuid7(),
            "submission_id": submission_id,
            "submitter": submitter,
            "spec": spec,
            "spec_hash": spec_hash,
            "backend": backend,
            "snapshot": snapshot,
            "status": "pending",
            "created_at": now(),
        }
        try:  # a new submission is the common case: insert first, look only on a conflict
            # One prepared INSERT on a plain connection: a third of an ORM flush's time.
            with self._write_lock, self.engine.begin() as connection:
                connection.execute(_INSERT_JOB, values)
            return Job(**values), True
        except IntegrityError:  # submitted before (a retry), or the same submission raced us
            existing = self._by_submission(submitter, submission_id)
            if existing is None:
                raise
        if existing.spec_hash != spec_hash:
            raise SubmissionConflict(existing)
        return existing, False

    def _by_submission(self, submitter: str, submission_id: str) -> Job | None:
        with self.sessions() as session:
            return session.scalar(
                select(Job).where(Job.submitter == submitter, Job.submission_id == submission_id)
            )

    def get(self, job_id: str) -> Job | None:
        with self.sessions() as session:
            return session.scalar(select(Job).where(Job.id == job_id))

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        backend: str | None = None,
        submitter: str | None = None,
        before: int | None = None,
        limit: int = 50,
        label: tuple[str, str] | None = None,
        text: str | None = None,
        ids: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Jobs newest first; `before` is the cursor: the `seq` of the last job seen. What a
        listed job shows (`JobInfo`'s fields, and `seq`; on SQLite the timestamps as text
        that `JobInfo` parses) as plain dicts, not loaded `Job`s: a third of the time.
        The dashboard also filters by a `label` (key, value), a `text` in the id, name,
        command or reason (case-insensitive), and `ids`."""
        query = _NEWEST[not self.is_postgres].limit(limit)
        if label is not None:
            query = query.where(Job.spec[("labels", label[0])].as_string() == label[1])
        if text:
            plain, quoted = _contains(text.lower()), _contains(json.dumps(text.lower())[1:-1])
            # The command is matched in its JSON text, where quotes and backslashes are escaped.
            matches = [
                func.lower(Job.id).like(plain, escape="\\"),
                func.lower(Job.reason).like(plain, escape="\\"),
                func.lower(Job.spec["name"].as_string()).like(plain, escape="\\"),
                func.lower(cast(Job.spec["command"], Text)).like(quoted, escape="\\"),
            ]
            query = query.where(or_(*matches))
        if ids:
            query = query.where(Job.id.in_(ids))
        if statuses:
            query = query.where(Job.status.in_(statuses))
        if backend:
            query = query.where(Job.backend == backend)
        if submitter:
            query = query.where(Job.submitter == submitter)
        if before is not None:
            query = query.where(Job.seq < before)
        with self.engine.connect() as connection:
            result = connection.execute(query)
            keys, rows = list(result.keys()), result.all()
        return [dict(zip(keys, values, strict=True)) for values in rows]

    def waiting(self, limit: int) -> list[Job]:
        """Jobs not started yet (in the server's queue, or claimed and waiting in their
        backend's), the longest waiting first."""
        query = select(Job).where(Job.status.in_(("pending", "queued")), Job.started_at.is_(None))
        with self.sessions() as session:
            return list(session.scalars(query.order_by(Job.seq).limit(limit)))

    def hourly(
        self, start: datetime, end: datetime
    ) -> tuple[list[tuple[str, str, int]], list[tuple[str, float]]]:
        """What the queue page's charts draw of the hours from `start` to `end` (whole hours,
        UTC, at most 24: an hour is named by its `"HH"`):
        how many jobs were submitted in each hour (`"HH"`) by their status now, one GROUP BY;
        and the wait (seconds from submission to start) of each job started in each hour,
        computed by the database: no timestamp is parsed here, 100,000 of them cost a second."""
        if self.is_postgres:

            def hour(column: Any) -> Any:
                return func.to_char(func.timezone("UTC", column), "HH24")

            wait: Any = func.extract("epoch", Job.started_at - Job.created_at)
        else:

            def hour(column: Any) -> Any:
                return func.strftime("%H", column)

            wait = (func.julianday(Job.started_at) - func.julianday(Job.created_at)) * 86400.0
        submitted = hour(Job.created_at)
        counts = (
            select(submitted, Job.status, func.count())
            .where(Job.created_at >= start, Job.created_at < end)
            .group_by(submitted, Job.status)
        )
        waits = select(hour(Job.started_at), wait).where(
            Job.started_at >= start, Job.started_at < end
        )
        with self.engine.connect() as connection:
            counted = [(str(h), str(s), int(n)) for h, s, n in connection.execute(counts)]
            waited = [(str(h), float(w)) for h, w in connection.execute(waits)]
        return counted, waited

    def running_count(self) -> int:
        """How many jobs a worker holds (claimed, not final): the slots taken."""
        query = select(func.count()).select_from(Job)
        query = query.where(Job.claimed_by.is_not(None), Job.status.not_in(FINAL))
        with self.engine.connect() as connection:
            return int(connection.scalar(query) or 0)

    def job_counts(self) -> list[tuple[str, str, int]]:
        """How many jobs have each status on each backend: one GROUP BY (for /metrics)."""
        query = select(Job.status, Job.backend, func.count()).group_by(Job.status, Job.backend)
        with self.engine.connect() as connection:
            return [(str(s), str(b), int(n)) for s, b, n in connection.execute(query)]

    def cancel(self, job_id: str, reason: str) -> Job | None:
        """Cancel a job still in the queue at once; for a claimed one, leave the request
        for its worker. Returns the job as it is afterwards."""
        with self._writing() as session:
            done = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "pending", Job.claimed_by.is_(None))
                .values(status="cancelled", reason=reason, finished_at=now())
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status.not_in(FINAL), Job.cancel_reason.is_(None))
                    .values(cancel_reason=reason)
                )
        return self.get(job_id)

    def claim(self, worker: str) -> Job | None:
        """Take the oldest job in the queue for `worker`, or None when the queue is empty."""
        with self._writing() as session:
            candidate = select(Job.seq).where(Job.status == "pending", Job.claimed_by.is_(None))
            candidate = candidate.order_by(Job.seq).limit(1)
            if self.is_postgres:
                candidate = candidate.with_for_update(skip_locked=True)
            seq = session.scalar(candidate)
            if seq is None:
                return None
            done = session.execute(
                update(Job)
                .where(Job.seq == seq, Job.status == "pending", Job.claimed_by.is_(None))
                .values(claimed_by=worker)
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                return None  # another worker was faster (SQLite): try again next tick
            return session.get(Job, seq)

    def requeue(self, job_id: str, worker: str) -> bool:
        """Put a job `worker` claimed but never started back in the queue (its run was
        never recorded); False when it is not that any more."""
        with self._writing() as session:
            done = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.claimed_by == worker, Job.run_id.is_(None))
                .where(Job.status.not_in(FINAL))
                .values(
                    claimed_by=None,
                    status="pending",
                    job_dir=None,
                    stdout_path=None,
                    stderr_path=None,
                    started_at=None,
                )
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def update(self, job_id: str, **values: Any) -> None:
        with self._writing() as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def owned(self, worker: str) -> list[Job]:
        """The jobs `worker` claimed that are not final yet."""
        with self.sessions() as session:
            query = select(Job).where(Job.claimed_by == worker, Job.status.not_in(FINAL))
            return list(session.scalars(query.order_by(Job.seq)))
