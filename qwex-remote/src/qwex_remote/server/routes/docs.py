"""`/openapi.json`, `/docs` and `/redoc`, behind a token like the API (any role).

A browser does not send one by itself, so read the spec with a client that does (curl -H
"Authorization: Bearer ...") or the committed `qwex-remote/openapi.json`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from qwex_remote.server.deps import Viewer

router = APIRouter(include_in_schema=False)


@router.get("/openapi.json")
def spec(request: Request, who: Viewer) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger(who: Viewer) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="qwex server - docs")


@router.get("/redoc")
def redoc(who: Viewer) -> HTMLResponse:
    return get_redoc_html(openapi_url="/openapi.json", title="qwex server - ReDoc")
