"""The dashboard's script and style sheet, files of the package (nothing from another site)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from qwex_remote.server import pages

router = APIRouter(include_in_schema=False, tags=["dashboard"])


@router.get("/assets/{name}")
def asset(name: str) -> Response:
    found = pages.asset(name)
    return found if found is not None else Response("not found", 404, headers=pages.HEADERS)
