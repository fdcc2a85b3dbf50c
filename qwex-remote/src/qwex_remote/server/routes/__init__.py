"""The server's routes, one module per resource, each an `APIRouter` named `router`.

`api_router` gathers the REST API under `/api/v1` (in the order the spec lists them);
`docs.router` serves the spec and its viewers, and `metrics.router` the Prometheus metrics,
at the root, outside the spec.
"""

from __future__ import annotations

from fastapi import APIRouter

from qwex_remote.server import API_VERSION
from qwex_remote.server.routes import health, jobs, logs, snapshots

api_router = APIRouter(prefix=f"/api/v{API_VERSION}")
api_router.include_router(health.router)
api_router.include_router(jobs.router)
api_router.include_router(logs.router)
api_router.include_router(snapshots.router)
