"""One error model for every non-2xx response: `{"error": {"code": ..., "message": ...}}`.

Each code is declared on the routes that may return it (`responses(...)`), so the
OpenAPI spec names every error a client can get.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwex_remote.server.schemas import ErrorResponse

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
    413: ("too_large", "the snapshot is over the server's limit"),
    422: (
        "invalid_request",
        "the body or a parameter is invalid (also snapshot_invalid, snapshot_not_found, "
        "secret_not_found)",
    ),
    503: ("unavailable", "the server is shutting down"),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def responses(*statuses: int, ok: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the error model and its codes, and
    `ok` as the 200 response when the route's own status is another (201)."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": CODES[status][1]} for status in statuses
    }
    if ok is not None:
        out[200] = ok
    return out


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
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
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

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(body("internal_error", f"{type(exc).__name__}: {exc}"), status_code=500)
