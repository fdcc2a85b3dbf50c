"""`GET /metrics`: the server's metrics in the Prometheus text format, for a viewer token.

Outside the OpenAPI spec (`include_in_schema=False`): Prometheus reads it, not the API
client, and its content is described in docs/server.md ("Metrics").
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from qwex_remote.server.deps import State, Viewer
from qwex_remote.server.services import metrics as service

router = APIRouter(tags=["server"])


@router.get("/metrics", include_in_schema=False)
def metrics(who: Viewer, state: State) -> Response:
    """Every metric of docs/server.md, the jobs counted in the database now."""
    return Response(service.exposition(state), media_type=service.CONTENT_TYPE)
