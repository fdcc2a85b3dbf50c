"""One error model for every non-2xx response: `{"error": {"code": ..., "message": ...}}`.

Each code is declared on the routes that may return it (`responses(...)`), so the
OpenAPI spec names every error a client can get.

No error answer carries an exception's text: a database that cannot be reached is a
503 `unavailable` with a plain message (the driver's text names the database's host
and port), anything unexpected a 500 `internal_error` whose details are in the
server's log only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwex_remote.server.db import OUTAGE_MESSAGE, is_outage
from qwex_remote.server.schemas import ErrorResponse

log = logging.getLogger("qwex.server")
RETRY_AFTER = "5"
"""Seconds a client is told to wait after a 503."""
INTERNAL = "the server failed on this request; its administrator finds the details in its log"

CODES: dict[int, tuple[str, str]] = {
    400: ("bad_request", "the request is malformed (e.g. snapshot_digest_mismatch)"),
    401: ("unauthorized", "no bearer token, or an unknown or revoked one"),
    403: (
        "forbidden",
        "not allowed for this token (forbidden: its role, or another user's job) or by the "
        "server policy (policy_refused, naming the rule)",
    ),
    404: ("not_found", "no such job or snapshot"),
    409: ("submission_conflict", "the submission id was used for another spec"),
    413: (
        "too_large",
        "the request body, or a snapshot or what it unpacks to, is over the server's limit "
        "(the message names the setting)",
    ),
    422: (
        "invalid_request",
        "the body or a parameter is invalid (also snapshot_invalid, snapshot_not_found, "
        "secret_not_found)",
    ),
    503: ("unavailable", "the server's database is unavailable, or the server is shutting down"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def responses(*statuses: int, ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the error model and its codes, and
    `ok` as the 200 response when the route's own status is another (201). Every route
    that uses the database may answer 503 during an outage: that one is always added."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": CODES[status][1]}
        for status in (*statuses, 503)
    }
    if ok is not None:
        out[200] = ok
    return out


def _short(part: object, most: int = 40) -> str:
    """A part of an error's location: a dict key may be as long as the body itself."""
    text = str(part)
    return text if len(text) <= most else f"{text[: most - 3]}..."


def body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body(exc.code, exc.message), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(_short(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        return JSONResponse(body("invalid_request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, detail = exc.status_code, str(exc.detail)
        if status == 400:  # the framework could not parse the body (e.g. not UTF-8 JSON)
            status, detail = 422, f"the request body cannot be read: {detail}"
        code = CODES.get(status, ("http_error", ""))[0]
        if status == 405:
            code = "method_not_allowed"
        return JSONResponse(body(code, detail), status_code=status)

    async def database(request: Request, exc: Exception) -> JSONResponse:
        if not is_outage(exc):  # a wrong statement: a bug, logged whole, told plainly
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return JSONResponse(body("internal_error", INTERNAL), status_code=500)
        state = getattr(request.app.state, "server", None)
        if state is not None:
            state.store.outage.failed(exc)
        return JSONResponse(
            body("unavailable", OUTAGE_MESSAGE),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )

    # Handled here, not by the catch-all below: Starlette re-raises what reaches that one
    # for the server to log, which made a traceback of every request during an outage.
    for kind in _database_errors():
        app.add_exception_handler(kind, database)

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(body("internal_error", INTERNAL), status_code=500)


def _database_errors() -> tuple[type[Exception], ...]:
    import psycopg
    from sqlalchemy import exc as sa

    return (sa.DBAPIError, sa.TimeoutError, psycopg.Error)
