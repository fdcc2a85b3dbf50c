"""`/jobs/{job_id}/logs`: a job's output, a range at a time or followed live (SSE)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from qwex_remote.server.deps import JobId, State, Viewer, role
from qwex_remote.server.errors import responses
from qwex_remote.server.logs import parse_event_id
from qwex_remote.server.schemas import LogChunk
from qwex_remote.server.services import jobs, logs
from qwex_remote.server.tokens import Role

MAX_LOG_CHUNK = 8 << 20

router = APIRouter(prefix="/jobs/{job_id}/logs", tags=["logs"])


@router.get(
    "",
    operation_id="get_logs",
    response_model=LogChunk,
    responses=responses(401, 404, 422),
    openapi_extra=role(Role.VIEWER),
)
def get_logs(
    job_id: JobId,
    who: Viewer,
    state: State,
    stream: Literal["stdout", "stderr", "index"] = "stdout",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LOG_CHUNK)] = 1 << 20,
) -> LogChunk:
    """Up to `limit` bytes of one stream from byte `offset`: exact in `data_b64`.
    `index` is the job's write-order index (24-byte records: when each piece of
    output was written, to which stream, where; see docs/server.md)."""
    return logs.chunk(state, job_id, stream, offset, limit)


@router.get(
    "/follow",
    operation_id="follow_logs",
    responses=responses(
        401,
        404,
        422,
        ok={
            "description": "Server-Sent Events: `log` (JSON chunk; the event id is "
            "`STDOUT_OFFSET,STDERR_OFFSET` to resume from), then `end` (final status), "
            "or `shutdown` when the server stops first",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    ),
    response_class=StreamingResponse,
    openapi_extra=role(Role.VIEWER),
)
async def follow_logs(
    job_id: JobId,
    who: Viewer,
    state: State,
    stdout_offset: Annotated[int, Query(ge=0)] = 0,
    stderr_offset: Annotated[int, Query(ge=0)] = 0,
    index_offset: Annotated[int | None, Query(ge=0)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Stream a job's output as it is written, then its end. Resumable from offsets
    (or the `Last-Event-ID` header). With `index_offset`, the job's write-order index
    comes too, as stream `index` (and the event ids have a third offset)."""
    await run_in_threadpool(jobs.job, state, job_id)  # a 404 before the stream starts
    offsets = parse_event_id(last_event_id) or {
        "stdout": stdout_offset,
        "stderr": stderr_offset,
    }
    if index_offset is not None:
        offsets.setdefault("index", index_offset)
    events = logs.follow(state, job_id, offsets)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
