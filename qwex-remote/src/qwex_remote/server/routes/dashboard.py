"""The dashboard's pages (runs, one run, the queue) and what their script asks for: the
statuses of the runs on a page, a run's log stream, a stream's download. Signed in with a
session cookie (`routes.sessions`), never a bearer token; outside the API's spec."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from qwex_remote.server import pages
from qwex_remote.server.deps import DataVisit, JobId, PageVisit, State
from qwex_remote.server.errors import ApiError
from qwex_remote.server.logs import parse_event_id
from qwex_remote.server.services import charts, jobs, logs, runs, sessions

router = APIRouter(include_in_schema=False, tags=["dashboard"])


@router.get("/")
def runs_page(request: Request, visit: PageVisit, state: State) -> Response:
    filters = runs.Filters.parse(request.query_params)
    page = runs.runs(state, filters)
    return pages.render(
        "runs.html",
        visit=visit,
        filters=filters,
        page=page,
        statuses=runs.STATUSES,
        backends=sorted(state.host.runners),
    )


@router.get("/runs.json")
def run_statuses(
    visit: DataVisit, state: State, id: Annotated[list[str] | None, Query()] = None
) -> JSONResponse:
    """What changed of the runs a page shows (their ids): its script asks every second."""
    return JSONResponse(runs.statuses(state, id or []), headers=pages.HEADERS)


@router.get("/runs/{job_id}/timeline.json")
def run_timeline(job_id: JobId, visit: DataVisit, state: State) -> JSONResponse:
    """The run's history as its page shows it: the page asks again when the status changes."""
    steps = runs.detail(state, job_id).timeline
    body = [{"status": s.status, "at": pages.when(s.at), "reason": s.reason} for s in steps]
    return JSONResponse(body, headers=pages.HEADERS)


@router.get("/queue")
def queue_page(visit: PageVisit, state: State) -> Response:
    return pages.render(
        "queue.html", visit=visit, view=runs.queue(state), activity=charts.activity(state)
    )


def _detail(state: State, job_id: str, visit: sessions.Visit) -> runs.RunDetail | Response:
    try:
        return runs.detail(state, job_id)
    except ApiError as exc:
        return pages.render("error.html", exc.status, visit=visit, message=exc.message)


@router.get("/runs/{job_id}")
def run_page(job_id: JobId, visit: PageVisit, state: State) -> Response:
    shown = _detail(state, job_id, visit)
    if isinstance(shown, Response):
        return shown
    return pages.render(
        "run.html",
        visit=visit,
        run=shown,
        may_cancel=jobs.may_cancel(visit.who, shown.info.submitter),
    )


@router.get("/runs/{job_id}/cancel")
def confirm_cancel(job_id: JobId, visit: PageVisit, state: State) -> Response:
    """Are you sure? The cancel itself is the POST of this page's form."""
    shown = _detail(state, job_id, visit)
    if isinstance(shown, Response):
        return shown
    if not jobs.may_cancel(visit.who, shown.info.submitter):
        message = jobs.refusal(visit.who, shown.info.submitter)
        return pages.render("error.html", 403, visit=visit, message=message)
    return pages.render("confirm.html", visit=visit, run=shown)


@router.post("/runs/{job_id}/cancel")
async def cancel(job_id: JobId, request: Request, visit: PageVisit, state: State) -> Response:
    fields = await pages.form(request)
    try:
        sessions.check_csrf(visit, (fields or {}).get("csrf"))
        found = await run_in_threadpool(jobs.job, state, job_id)
        if not jobs.may_cancel(visit.who, found.submitter):
            raise ApiError(403, "forbidden", jobs.refusal(visit.who, found.submitter))
        await run_in_threadpool(jobs.cancel, state, job_id, visit.who)
    except ApiError as exc:
        return pages.render("error.html", exc.status, visit=visit, message=exc.message)
    return pages.redirect(f"/runs/{job_id}")


@router.get("/runs/{job_id}/follow")
async def follow(
    job_id: JobId,
    visit: DataVisit,
    state: State,
    stdout_offset: Annotated[int, Query(ge=0)] = 0,
    stderr_offset: Annotated[int, Query(ge=0)] = 0,
    index_offset: Annotated[int, Query(ge=0)] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """The run's log as the API's follow stream sends it, with the write-order index (the
    page's script puts stdout and stderr in the order they were written)."""
    await run_in_threadpool(jobs.job, state, job_id)  # a 404 before the stream starts
    offsets = parse_event_id(last_event_id) or {"stdout": stdout_offset, "stderr": stderr_offset}
    offsets.setdefault("index", index_offset)
    headers = {**pages.HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(
        logs.follow(state, job_id, offsets), media_type="text/event-stream", headers=headers
    )


@router.get("/runs/{job_id}/logs/{stream}")
def download(job_id: JobId, stream: str, visit: PageVisit, state: State) -> Response:
    """One stream of the run's log as a file, exactly the bytes the job wrote."""
    if stream not in ("stdout", "stderr"):
        return pages.render("error.html", 404, visit=visit, message=f"no log stream {stream!r}")
    try:
        pieces = logs.download(state, job_id, stream)  # type: ignore[arg-type]
    except ApiError as exc:
        return pages.render("error.html", exc.status, visit=visit, message=exc.message)
    name = f"{runs.short_id(job_id)}-{stream}.log"
    headers = {**pages.HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return StreamingResponse(pieces, media_type="text/plain; charset=utf-8", headers=headers)
