"""Jobs: submit (policy, secrets, snapshot, idempotent submission id), look up, list, cancel."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from qwex_core.errors import QwexError

from qwex_remote.server import policy
from qwex_remote.server.errors import ApiError
from qwex_remote.server.schemas import JobInfo, JobPage, JobSubmission
from qwex_remote.server.state import ServerState
from qwex_remote.server.store import FINAL, Principal, SubmissionConflict, aware
from qwex_remote.server.tables import Job
from qwex_remote.server.tokens import Role

MAX_SEQ = (1 << 63) - 1
"""A cursor past it is past every job (and would overflow the database's integer)."""


def info(job: Job) -> JobInfo:
    return JobInfo(
        id=job.id,
        submission_id=job.submission_id,
        submitter=job.submitter,
        backend=job.backend,
        status=job.status,  # type: ignore[arg-type]
        reason=job.reason,
        exit_code=job.exit_code,
        signal=job.signal,
        created_at=aware(job.created_at),  # type: ignore[arg-type]
        started_at=aware(job.started_at),
        finished_at=aware(job.finished_at),
        cancel_requested=job.cancel_reason is not None,
        snapshot=job.snapshot,
        spec=job.spec,
    )


def job(state: ServerState, job_id: str) -> Job:
    """The job, or a 404 naming it."""
    found = state.store.get(job_id)
    if found is None:
        raise ApiError(404, "not_found", f"no job {job_id} on this server")
    return found


def submit(state: ServerState, submission: JobSubmission, who: Principal) -> tuple[JobInfo, bool]:
    """The queued job and True, or the job of an earlier identical submission and False.

    Refused when the server's policy forbids it (403), the profile, a secret or the
    snapshot is unknown (422), or the submission id made a job with another spec (409).
    Each new job and each refusal (by its error code) is counted for /metrics.
    """
    try:
        made, created = _submit(state, submission, who)
    except ApiError as exc:
        state.metrics.refusals.labels(exc.code).inc()
        raise
    if created:
        state.metrics.submissions.labels(made.backend).inc()
    return made, created


def _submit(state: ServerState, submission: JobSubmission, who: Principal) -> tuple[JobInfo, bool]:
    installed = set(state.host.runners)

    def profile_backend(name: str) -> str:
        return str(state.configs.get(name).core.backend)

    try:
        backend = policy.check(submission, state.settings, installed, profile_backend)
    except policy.Refused as exc:
        raise ApiError(403, "policy_refused", str(exc)) from None
    except QwexError as exc:  # an allowed profile that the configuration lacks
        raise ApiError(422, "invalid_request", str(exc)) from None
    if submission.secrets:
        wanted = set(submission.secrets.values())
        unknown = sorted(wanted - state.store.secret_names(wanted))
        if unknown:
            raise ApiError(
                422,
                "secret_not_found",
                f"no secret named {', '.join(map(repr, unknown))} on this server (an admin "
                "adds one with `qwex serve secret add NAME`; `qwex serve secret list` "
                "shows them)",
            )
    if submission.snapshot and state.store.snapshot(submission.snapshot) is None:
        raise ApiError(
            422,
            "snapshot_not_found",
            f"snapshot {submission.snapshot} was not uploaded (PUT /snapshots/SHA256 first)",
        )
    spec = submission.spec_data()
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    try:
        made, created = state.store.submit(
            submitter=who.name,
            submission_id=submission.submission_id,
            spec=spec,
            spec_hash=digest,
            backend=backend,
            snapshot=submission.snapshot,
        )
    except SubmissionConflict as exc:
        raise ApiError(
            409,
            "submission_conflict",
            f"submission id {submission.submission_id!r} already made job {exc.job.id} "
            "with another spec; use a new submission id",
        ) from None
    if created:
        state.wake.set()
    return info(made), created


def page(
    state: ServerState,
    *,
    statuses: Sequence[str],
    backend: str | None,
    submitter: str | None,
    cursor: str | None,
    limit: int,
) -> JobPage:
    """Jobs newest first, at most `limit`, before the `cursor` (a job's seq) if given."""
    jobs = state.store.list_jobs(
        statuses=statuses,
        backend=backend,
        submitter=submitter,
        before=min(int(cursor), MAX_SEQ) if cursor else None,
        limit=limit + 1,
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return JobPage.model_validate(
        {"items": jobs, "next_cursor": str(jobs[-1]["seq"]) if more else None}
    )


def cancel(state: ServerState, job_id: str, who: Principal) -> JobInfo:
    """Cancel a job (a user their own, an admin any): at once while it waits, else through
    its worker. A job that has ended is returned as it is."""
    found = job(state, job_id)
    if not who.is_admin and found.submitter != who.name:
        raise ApiError(
            403,
            "forbidden",
            f"job {job_id} was submitted by another user; only an admin "
            "or its submitter may cancel it",
        )
    if found.status in FINAL:
        return info(found)
    updated = state.store.cancel(job_id, f"cancelled by {who.name}")
    state.wake.set()
    return info(updated or found)


def may_cancel(who: Principal, submitter: str) -> bool:
    """The API's rule, for the dashboard to show or hide its cancel: a user cancels their
    own jobs, an admin any, a viewer none."""
    return who.may(Role.USER) and (who.is_admin or who.name == submitter)


def refusal(who: Principal, submitter: str) -> str:
    """Why `who` may not cancel a job of `submitter`."""
    if not who.may(Role.USER):
        return (
            f"{who.name} signed in with a {who.role} token: the viewer role sees runs and "
            "cannot cancel them"
        )
    return f"this job was submitted by {submitter}; only they or an admin may cancel it"
