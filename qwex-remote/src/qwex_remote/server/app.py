"""The FastAPI app factory: `create_app(settings)`, the REST API under `/api/v1`.

This module only assembles the app: its lifespan (`state.start`), the request-size and
request-timing middleware, the error handlers (`errors.install`) and the routers of
`routes/`. The
routes translate HTTP to calls of `services/`, which hold the rules.

`create_app` connects to nothing: the lifespan opens the database (migrating
it), loads the plugins and the configuration, and starts the worker. So
`openapi_json()` builds the spec from an app that never starts.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from qwex_remote import __version__
from qwex_remote.server import API_VERSION, errors, pages
from qwex_remote.server.limits import BodyLimit
from qwex_remote.server.metrics import Metrics, RequestTimer
from qwex_remote.server.routes import api_router, assets, dashboard, docs, metrics, sessions
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.state import start

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.plugin.manager import PluginHost


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
    counted = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state, worker = await run_in_threadpool(
            start, settings, config, host, worker_name, stop, project_dir, counted
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
        # Served by `routes.docs` behind a token, like the API.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    errors.install(app)
    pages.install(app)
    snapshots = f"/api/v{API_VERSION}/snapshots/"
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        exempt=lambda method, path: method == "PUT" and path.startswith(snapshots),
    )
    # Outermost: a request the body limit refuses is timed too.
    app.add_middleware(RequestTimer, metrics=counted, templates=lambda: app.openapi()["paths"])
    app.include_router(api_router)
    app.include_router(docs.router)
    app.include_router(metrics.router)
    # The dashboard (server-rendered pages at /), outside the API's spec.
    app.include_router(sessions.router)
    app.include_router(dashboard.router)
    app.include_router(assets.router)
    return app
