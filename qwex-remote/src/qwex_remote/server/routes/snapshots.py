"""`/snapshots/{sha256}`: whether the server has a project snapshot, and its upload."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from qwex_remote.server.deps import Member, Sha, State, Viewer, role
from qwex_remote.server.errors import responses
from qwex_remote.server.schemas import SnapshotInfo
from qwex_remote.server.services import snapshots
from qwex_remote.server.tokens import Role

router = APIRouter(prefix="/snapshots", tags=["snapshots"])


@router.get(
    "/{sha256}",
    operation_id="get_snapshot",
    response_model=SnapshotInfo,
    responses=responses(401, 404, 422),
    openapi_extra=role(Role.VIEWER),
)
def get_snapshot(sha256: Sha, who: Viewer, state: State) -> SnapshotInfo:
    """Whether the server has a snapshot (a client skips the upload then)."""
    return snapshots.get(state, sha256)


@router.put(
    "/{sha256}",
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
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    ),
)
async def put_snapshot(
    sha256: Sha, request: Request, who: Member, state: State, response: Response
) -> SnapshotInfo:
    """Upload a project snapshot (tar.gz), named by its sha256: verified, size-limited,
    and a no-op (200) when the server has it."""
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isdigit() else None
    info, created = await snapshots.put(state, sha256, declared, request.stream())
    if not created:
        response.status_code = 200
    return info
