"""The request body limit of the whole API (`server.max_request_bytes`), as ASGI middleware.

Before this a 100 MiB label was accepted and stored, and every page of `GET /jobs`
carried it. The middleware reads a body up to the limit (what the app would hold
anyway) and hands it on; past the limit, or when `Content-Length` says so at once, a
little of the rest is read and dropped (`DRAIN_SECONDS`) and the answer is a 413
`too_large` naming the setting. A snapshot upload streams to disk under its own
`server.max_snapshot_bytes`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from qwex_core.agent.unpack import UnpackedTooLarge

DRAIN_SECONDS, DRAIN_LIMITS = 0.5, 16
"""The rest of a refused body is read and dropped, for at most half a second and 16 limits'
worth, before the 413 is sent: a body a little over the limit gets a clean answer; past
that the connection is closed on the rest (clients such as httpx still read the 413)."""


class BodyLimit:
    """Refuse request bodies over `limit` bytes, except on paths `exempt(method, path)`."""

    def __init__(self, app: ASGIApp, limit: int, exempt: Callable[[str, str], bool]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(receive, send)
            return
        held: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break  # a disconnect: the app sees it in turn
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(receive, send, more=message.get("more_body", False))
                return
            more = message.get("more_body", False)

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, receive: Receive, send: Send, *, more: bool = True) -> None:
        deadline, dropped = time.monotonic() + DRAIN_SECONDS, 0
        while more and time.monotonic() < deadline and dropped <= DRAIN_LIMITS * self.limit:
            message = await receive()
            dropped += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
        body = json.dumps({"error": {"code": "too_large", "message": self.message()}}).encode()
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def message(self) -> str:
        return (
            f"the request body is over {self.limit} bytes, the server's limit "
            "(server.max_request_bytes); send less (a project's files go in a snapshot)"
        )


def snapshot_too_large(exc: UnpackedTooLarge) -> str:
    """The one-line refusal of a snapshot over an unpacked limit, naming the setting."""
    key = "max_snapshot_unpacked_bytes" if exc.what == "bytes" else "max_snapshot_files"
    return (
        f"{exc}, the server's limit (server.{key}); leave large or many files out of the "
        "snapshot with .qwexignore"
    )
