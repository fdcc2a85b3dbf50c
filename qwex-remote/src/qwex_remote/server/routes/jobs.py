"""`/jobs`: submit, get, list and cancel jobs (`services.jobs` decides)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from qwex_remote.server.deps import JobId, Member, State, Viewer, role
from qwex_remote.server.errors import responses
from qwex_remote.server.schemas import JobInfo, JobPage, JobSubmission
from qwex_remote.server.services import jobs
from qwex_remote.server.tokens import Role

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "",
    operation_id="submit_job",
    response_model=JobInfo,
    status_code=201,
    responses=responses(
        401, 403, 409, 413, 422, ok={"model": JobInfo, "description": "submitted before"}
    ),
    openapi_extra=role(Role.USER),
)
def submit_job(submission: JobSubmission, who: Member, state: State) -> Response:
    """Queue a job (201), or return the job of an earlier identical submission (200)."""
    job, created = jobs.submit(state, submission, who)
    # Validated as it was built: returned as is, not validated again by FastAPI.
    body = job.model_dump_json()
    return Response(body, status_code=201 if created else 200, media_type="application/json")


@router.get(
    "/{job_id}",
    operation_id="get_job",
    response_model=JobInfo,
    responses=responses(401, 404, 422),
    openapi_extra=role(Role.VIEWER),
)
def get_job(job_id: JobId, who: Viewer, state: State) -> JobInfo:
    """A job as the server last saw it."""
    return jobs.info(jobs.job(state, job_id))


@router.get(
    "",
    operation_id="list_jobs",
    response_model=JobPage,
    responses=responses(401, 422),
    openapi_extra=role(Role.VIEWER),
)
def list_jobs(
    who: Viewer,
    state: State,
    status: Annotated[list[str] | None, Query(description="only these statuses")] = None,
    backend: str | None = None,
    submitter: str | None = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """Jobs newest first, a page at a time (`next_cursor` gives the next page)."""
    page = jobs.page(
        state,
        statuses=status or (),
        backend=backend,
        submitter=submitter,
        cursor=cursor,
        limit=limit,
    )
    # Validated here already: returned as is, not validated again by FastAPI.
    return Response(page.model_dump_json(), media_type="application/json")


@router.post(
    "/{job_id}/cancel",
    operation_id="cancel_job",
    response_model=JobInfo,
    responses=responses(401, 403, 404, 422),
    openapi_extra=role(Role.USER),
)
def cancel_job(job_id: JobId, who: Member, state: State) -> JobInfo:
    """Cancel a job: at once while it waits, else through its worker. A user cancels
    their own jobs, an admin any."""
    return jobs.cancel(state, job_id, who)
