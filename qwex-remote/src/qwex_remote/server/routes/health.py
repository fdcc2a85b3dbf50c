"""`GET /health`: the one route that needs no token."""

from __future__ import annotations

from fastapi import APIRouter

from qwex_remote import __version__
from qwex_remote.server import API_VERSION
from qwex_remote.server.schemas import Health

router = APIRouter(tags=["server"])


@router.get(
    "/health",
    operation_id="health",
    response_model=Health,
    openapi_extra={"x-qwex-role": "none"},
)
def health() -> Health:
    """The server's version and the API version it speaks (no token needed)."""
    return Health(server_version=__version__, api_version=API_VERSION)
