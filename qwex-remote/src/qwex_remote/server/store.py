"""The server's data access: jobs (the queue), tokens and snapshots, on SQLite or PostgreSQL.

The database is the queue. A worker claims the oldest pending job by setting
`claimed_by` where it is still NULL: on PostgreSQL after `SELECT ... FOR UPDATE
SKIP LOCKED` (concurrent workers skip each other's row instead of waiting), on
SQLite with one conditional UPDATE (SQLite serialises writers, and the
`WHERE claimed_by IS NULL` makes a lost race change no row). Either way a job is
run by exactly one worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qwex_core.ids import uuid7
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qwex_remote.server import tokens
from qwex_remote.server.tables import Job, Snapshot, Token

FINAL = ("succeeded", "failed", "cancelled", "lost")


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


class SubmissionConflict(Exception):
    """The submission id was used before by the same submitter for another spec."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.id)
        self.job = job


class ServerStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.is_postgres = sessions.kw["bind"].dialect.name == "postgresql"

    # -- tokens ------------------------------------------------------------------

    def add_token(self, name: str, role: str) -> str:
        """Create the token `name`; return its secret (shown once, never stored)."""
        tokens.check_name(name)
        secret = tokens.new_secret()
        with self.sessions.begin() as session:
            if session.scalar(select(Token).where(Token.name == name)) is not None:
                raise ValueError(
                    f"a token named {name!r} exists already (revoked tokens keep their name); "
                    "choose another name"
                )
            session.add(
                Token(name=name, role=role, secret_hash=tokens.digest(secret), created_at=now())
            )
        return secret

    def list_tokens(self) -> list[Token]:
        with self.sessions() as session:
            return list(session.scalars(select(Token).order_by(Token.id)))

    def revoke_token(self, name: str) -> bool:
        """Revoke the token `name` (kept, shown as revoked); False when there is none."""
        with self.sessions.begin() as session:
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
        with self.sessions() as session:
            token = session.scalar(select(Token).where(Token.secret_hash == tokens.digest(secret)))
        if token is None or token.revoked_at is not None:
            return None
        if not tokens.matches(secret, token.secret_hash):
            return None
        return Principal(token.name, token.role)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self, sha256: str) -> Snapshot | None:
        with self.sessions() as session:
            return session.get(Snapshot, sha256)

    def add_snapshot(self, sha256: str, size: int, path: str) -> None:
        try:
            with self.sessions.begin() as session:
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
        existing = self._by_submission(submitter, submission_id)
        if existing is None:
            job = Job(
                id=uuid7(),
                submission_id=submission_id,
                submitter=submitter,
                spec=spec,
                spec_hash=spec_hash,
                backend=backend,
                snapshot=snapshot,
                status="pending",
                created_at=now(),
            )
            try:
                with self.sessions.begin() as session:
                    session.add(job)
                return job, True
            except IntegrityError:  # the same submission raced us
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
    ) -> list[Job]:
        """Jobs newest first; `before` is the cursor: the `seq` of the last job seen."""
        query = select(Job).order_by(Job.seq.desc()).limit(limit)
        if statuses:
            query = query.where(Job.status.in_(statuses))
        if backend:
            query = query.where(Job.backend == backend)
        if submitter:
            query = query.where(Job.submitter == submitter)
        if before is not None:
            query = query.where(Job.seq < before)
        with self.sessions() as session:
            return list(session.scalars(query))

    def cancel(self, job_id: str, reason: str) -> Job | None:
        """Cancel a job still in the queue at once; for a claimed one, leave the request
        for its worker. Returns the job as it is afterwards."""
        with self.sessions.begin() as session:
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
        with self.sessions.begin() as session:
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

    def update(self, job_id: str, **values: Any) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(**values))

    def owned(self, worker: str) -> list[Job]:
        """The jobs `worker` claimed that are not final yet."""
        with self.sessions() as session:
            query = select(Job).where(Job.claimed_by == worker, Job.status.not_in(FINAL))
            return list(session.scalars(query.order_by(Job.seq)))
