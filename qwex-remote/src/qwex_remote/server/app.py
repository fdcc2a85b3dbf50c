"""The FastAPI app factory: `create_app(settings)`, the REST API under `/api/v1`.

`create_app` connects to nothing: the lifespan opens the database (migrating
it), loads the plugins and the configuration, and starts the worker. So
`openapi_json()` builds the spec from an app that never starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from qwex_core.errors import QwexError
from starlette.concurrency import run_in_threadpool

from qwex_remote import __version__
from qwex_remote.server import API_VERSION, errors, policy
from qwex_remote.server.changes import LogWatch
from qwex_remote.server.configs import Configs
from qwex_remote.server.errors import ApiError, responses
from qwex_remote.server.limits import BodyLimit, snapshot_too_large
from qwex_remote.server.logfiles import chunk_fields, read_range
from qwex_remote.server.logs import file_path, follow_events, parse_event_id
from qwex_remote.server.schemas import (
    SHA256,
    Health,
    JobInfo,
    JobPage,
    JobSubmission,
    LogChunk,
    SnapshotInfo,
)
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.store import FINAL, Principal, ServerStore, SubmissionConflict, aware
from qwex_remote.server.tables import Job
from qwex_remote.server.tokens import Role

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.plugin.manager import PluginHost

MAX_LOG_CHUNK = 8 << 20
MAX_SEQ = (1 << 63) - 1
"""A cursor past it is past every job (and would overflow the database's integer)."""


@dataclass
class ServerState:
    """What the routes share, made by the lifespan."""

    settings: ServerSettings
    store: ServerStore
    host: Any
    configs: Configs
    data_dir: Path
    stopping: threading.Event
    wake: threading.Event

    def service_for(self, job: Job) -> Any:
        """Core's run service over the job's own run store (its folder)."""
        from qwex_remote.server.worker import job_service

        config = self.configs.get(job.spec.get("profile"))
        return job_service(self.host, config, Path(job.job_dir or "."))


def create_app(
    settings: ServerSettings,
    *,
    config: QwexConfig | None = None,
    host: PluginHost | None = None,
    worker_name: str | None = None,
    stopping: threading.Event | None = None,
    project_dir: Path | None = None,
) -> FastAPI:
    """The server app. `config` (the qwex configuration the runners get, with its profiles)
    and `host` (the plugins) default to those of `project_dir` (default: found from the
    working directory); `stopping` is set when shutdown begins, which ends the open log
    streams."""
    stop = stopping or threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state, worker = await run_in_threadpool(
            _start, settings, config, host, worker_name, stop, project_dir
        )
        app.state.server = state
        try:
            yield
        finally:
            stop.set()
            await run_in_threadpool(worker.close)

    app = FastAPI(
        title="qwex server",
        version=__version__,
        description="Runs qwex jobs for a team: submit, follow, cancel, list. "
        "Every route but /health needs a bearer token; each route names the least role "
        "it needs (`x-qwex-role`: viewer < user < admin), the docs routes too.",
        lifespan=lifespan,
        # Served by `_docs_router` behind a token, like the API.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    snapshots = f"/api/v{API_VERSION}/snapshots/"
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        exempt=lambda method, path: method == "PUT" and path.startswith(snapshots),
    )
    app.include_router(_router())
    app.include_router(_docs_router())
    return app


def _start(
    settings: ServerSettings,
    config: QwexConfig | None,
    host: PluginHost | None,
    worker_name: str | None,
    stop: threading.Event,
    project_dir: Path | None,
) -> tuple[ServerState, Any]:
    import socket

    from qwex_core.paths import find_project_dir
    from qwex_core.plugin.manager import PluginHost

    from qwex_remote.server.db import open_database
    from qwex_remote.server.worker import Worker

    plugins = host or PluginHost()
    configs = Configs(project_dir or find_project_dir(), plugins, config)
    configs.get()  # a bad configuration stops the start, naming the file and key
    data_dir = settings.resolved_data_dir()
    (data_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    store = ServerStore(open_database(settings.resolved_database_url()))
    worker = Worker(
        store=store,
        host=plugins,
        configs=configs,
        data_dir=data_dir,
        name=worker_name or socket.gethostname(),
        concurrency=settings.concurrency,
        settings=settings,
    )
    worker.start()
    state = ServerState(settings, store, plugins, configs, data_dir, stop, worker.wake)
    return state, worker


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def _state(request: Request) -> ServerState:
    """`state_of` as a dependency: async, so FastAPI does not hand it to a thread."""
    return state_of(request)


_bearer = HTTPBearer(auto_error=False, description="a token from `qwex serve token add NAME`")


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who calls. On SQLite the lookup (one indexed row, ~0.1 ms) runs right here: handing
    it to a thread cost more than the lookup; a database server is asked from a thread."""
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer TOKEN); an administrator "
            "creates one with `qwex serve token add NAME`",
        )
    store = state_of(request).store
    if store.is_postgres:
        who = await run_in_threadpool(store.authenticate, credentials.credentials)
    else:
        who = store.authenticate(credentials.credentials)
    if who is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    return who


def needs(role: Role) -> Any:
    """A dependency: the caller, when its token's role includes `role` (else 403)."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may(role):
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role} role; the token {who.name!r} is a {who.role} "
                f"(an admin can make a {role} token: qwex serve token add NAME --role {role})",
            )
        return who

    return check


def role(needed: Role, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A route's `openapi_extra`: the least role it needs, for the spec's readers."""
    return {"x-qwex-role": needed.value, **(extra or {})}


Viewer = Annotated[Principal, Depends(needs(Role.VIEWER))]
"""Any valid token: the read-only routes."""
Member = Annotated[Principal, Depends(needs(Role.USER))]
"""A user or admin token: the routes that change something."""
Who = Viewer
State = Annotated[ServerState, Depends(_state)]
JobId = Annotated[str, PathParam(max_length=64, description="the job's id")]
Sha = Annotated[str, PathParam(pattern=SHA256, description="sha256 of the snapshot (hex)")]


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


def _job(state: ServerState, job_id: str) -> Job:
    job = state.store.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id} on this server")
    return job


def _router() -> APIRouter:
    api = APIRouter(prefix=f"/api/v{API_VERSION}")

    @api.get(
        "/health",
        operation_id="health",
        response_model=Health,
        openapi_extra={"x-qwex-role": "none"},
        tags=["server"],
    )
    def health() -> Health:
        """The server's version and the API version it speaks (no token needed)."""
        return Health(server_version=__version__, api_version=API_VERSION)

    @api.post(
        "/jobs",
        operation_id="submit_job",
        response_model=JobInfo,
        status_code=201,
        responses=responses(
            401, 403, 409, 413, 422, ok={"model": JobInfo, "description": "submitted before"}
        ),
        openapi_extra=role(Role.USER),
        tags=["jobs"],
    )
    def submit_job(submission: JobSubmission, who: Member, state: State) -> Response:
        """Queue a job (201), or return the job of an earlier identical submission (200)."""
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
            job, created = state.store.submit(
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
        # Validated as it was built: returned as is, not validated again by FastAPI.
        body = info(job).model_dump_json()
        return Response(body, status_code=201 if created else 200, media_type="application/json")

    @api.get(
        "/jobs/{job_id}",
        operation_id="get_job",
        response_model=JobInfo,
        responses=responses(401, 404, 422),
        openapi_extra=role(Role.VIEWER),
        tags=["jobs"],
    )
    def get_job(job_id: JobId, who: Viewer, state: State) -> JobInfo:
        """A job as the server last saw it."""
        return info(_job(state, job_id))

    @api.get(
        "/jobs",
        operation_id="list_jobs",
        response_model=JobPage,
        responses=responses(401, 422),
        openapi_extra=role(Role.VIEWER),
        tags=["jobs"],
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
        jobs = state.store.list_jobs(
            statuses=status or (),
            backend=backend,
            submitter=submitter,
            before=min(int(cursor), MAX_SEQ) if cursor else None,
            limit=limit + 1,
        )
        more = len(jobs) > limit
        jobs = jobs[:limit]
        page = JobPage.model_validate(
            {"items": jobs, "next_cursor": str(jobs[-1]["seq"]) if more else None}
        )
        # Validated here already: returned as is, not validated again by FastAPI.
        return Response(page.model_dump_json(), media_type="application/json")

    @api.post(
        "/jobs/{job_id}/cancel",
        operation_id="cancel_job",
        response_model=JobInfo,
        responses=responses(401, 403, 404, 422),
        openapi_extra=role(Role.USER),
        tags=["jobs"],
    )
    def cancel_job(job_id: JobId, who: Member, state: State) -> JobInfo:
        """Cancel a job: at once while it waits, else through its worker. A user cancels
        their own jobs, an admin any."""
        job = _job(state, job_id)
        if not who.is_admin and job.submitter != who.name:
            raise ApiError(
                403,
                "forbidden",
                f"job {job_id} was submitted by another user; only an admin "
                "or its submitter may cancel it",
            )
        if job.status in FINAL:
            return info(job)
        updated = state.store.cancel(job_id, f"cancelled by {who.name}")
        state.wake.set()
        return info(updated or job)

    @api.get(
        "/jobs/{job_id}/logs",
        operation_id="get_logs",
        response_model=LogChunk,
        responses=responses(401, 404, 422),
        openapi_extra=role(Role.VIEWER),
        tags=["logs"],
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
        job = _job(state, job_id)
        path = file_path(stream, job.stdout_path, job.stderr_path)
        data, next_offset, size = read_range(job.job_dir, path, offset, limit)
        final = job.status in FINAL and next_offset >= size
        return LogChunk(
            stream=stream,
            offset=offset,
            next_offset=next_offset,
            final=final,
            **chunk_fields(data),
        )

    @api.get(
        "/jobs/{job_id}/logs/follow",
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
        tags=["logs"],
    )
    async def follow_logs(
        job_id: JobId,
        request: Request,
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
        await run_in_threadpool(_job, state, job_id)
        offsets = parse_event_id(last_event_id) or {
            "stdout": stdout_offset,
            "stderr": stderr_offset,
        }
        if index_offset is not None:
            offsets.setdefault("index", index_offset)
        watch: LogWatch | None = getattr(request.app.state, "log_watch", None)
        if watch is None:  # made here, in the server's event loop, on the first follow
            watch = request.app.state.log_watch = LogWatch(state.store, state.stopping)
        events = follow_events(watch, job_id, offsets, keepalive=state.settings.sse_keepalive)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    @api.get(
        "/snapshots/{sha256}",
        operation_id="get_snapshot",
        response_model=SnapshotInfo,
        responses=responses(401, 404, 422),
        openapi_extra=role(Role.VIEWER),
        tags=["snapshots"],
    )
    def get_snapshot(sha256: Sha, who: Viewer, state: State) -> SnapshotInfo:
        """Whether the server has a snapshot (a client skips the upload then)."""
        snapshot = state.store.snapshot(sha256)
        if snapshot is None:
            raise ApiError(404, "not_found", f"no snapshot {sha256} on this server")
        return SnapshotInfo(sha256=sha256, size=snapshot.size)

    @api.put(
        "/snapshots/{sha256}",
        operation_id="put_snapshot",
        response_model=SnapshotInfo,
        status_code=201,
        responses=responses(
            400, 401, 403, 413, 422, ok={"model": SnapshotInfo, "description": "already there"}
        ),
        openapi_extra=role(
            Role.USER,
            {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            },
        ),
        tags=["snapshots"],
    )
    async def put_snapshot(
        sha256: Sha, request: Request, who: Member, state: State, response: Response
    ) -> SnapshotInfo:
        """Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
        and a no-op (200) when the server has it."""
        existing = await run_in_threadpool(state.store.snapshot, sha256)
        if existing is not None:
            response.status_code = 200
            return SnapshotInfo(sha256=sha256, size=existing.size)
        limit = state.settings.max_snapshot_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "too_large", _too_large(int(declared), limit))
        folder = state.data_dir / "snapshots"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            digest, size = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as fh:
                async for part in request.stream():
                    size += len(part)
                    if size > limit:
                        raise ApiError(413, "too_large", _too_large(size, limit))
                    digest.update(part)
                    fh.write(part)
            if digest.hexdigest() != sha256:
                raise ApiError(
                    400,
                    "snapshot_digest_mismatch",
                    f"the body's sha256 is {digest.hexdigest()}, not {sha256}",
                )
            await run_in_threadpool(_check_archive, tmp, state.settings)
            final = folder / f"{sha256}.tar.gz"
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        await run_in_threadpool(state.store.add_snapshot, sha256, size, str(final))
        return SnapshotInfo(sha256=sha256, size=size)

    return api


def _docs_router() -> APIRouter:
    """`/openapi.json`, `/docs` and `/redoc`, behind a token like the API (any role): a
    browser does not send one by itself, so read the spec with a client that does (curl -H
    "Authorization: Bearer ...") or the committed `qwex-remote/openapi.json`."""
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import HTMLResponse, JSONResponse

    docs = APIRouter(include_in_schema=False)

    @docs.get("/openapi.json")
    def spec(request: Request, who: Viewer) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @docs.get("/docs")
    def swagger(who: Viewer) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="qwex server - docs")

    @docs.get("/redoc")
    def redoc(who: Viewer) -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="qwex server - ReDoc")

    return docs


def _too_large(size: int, limit: int) -> str:
    return (
        f"the snapshot is {'over ' if size > limit else ''}{size} bytes, over the server's "
        f"limit of {limit} bytes (server.max_snapshot_bytes); exclude large files with "
        ".qwexignore"
    )


def _check_archive(path: str, settings: ServerSettings) -> None:
    """A tar.gz whose headers add up to no more than the unpacked limits (read header by
    header: a bomb is refused at the member that takes it over, before its data), none of
    them huge (a pax header is read whole)."""
    import tarfile
    import zlib

    from qwex_core.agent.unpack import UnpackedTooLarge, members_within, open_archive

    try:
        with open_archive(path) as tar:
            members_within(tar, settings.unpacked_limit(), settings.max_snapshot_files)
    except UnpackedTooLarge as exc:
        if exc.what == "header":
            raise ApiError(422, "snapshot_invalid", str(exc)) from None
        raise ApiError(413, "too_large", snapshot_too_large(exc)) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ApiError(422, "snapshot_invalid", f"the snapshot is not a tar.gz: {exc}") from None
