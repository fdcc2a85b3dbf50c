"""The routes' dependencies, as `Annotated` types a route names in its signature.

`Viewer` and `Member` are the caller, checked against the least role a route needs
(401 without a known token, 403 with too small a role); `State` is the running server's
`ServerState`; `JobId` and `Sha` are the path parameters, constrained as the spec says.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Cookie, Depends, Request
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from qwex_remote.server.errors import ApiError
from qwex_remote.server.schemas import SHA256
from qwex_remote.server.services import sessions
from qwex_remote.server.state import ServerState
from qwex_remote.server.store import Principal
from qwex_remote.server.tokens import Role


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.server
    return state


async def _state(request: Request) -> ServerState:
    """`state_of` as a dependency: async, so FastAPI does not hand it to a thread."""
    return state_of(request)


_bearer = HTTPBearer(auto_error=False, description="a token from `qwex serve token add NAME`")


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """Who calls. On SQLite the lookup (one indexed row, ~0.1 ms) runs right here: handing
    it to a thread cost more than the lookup; a database server is asked from a thread."""
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "a bearer token is required (Authorization: Bearer TOKEN); an administrator "
            "creates one with `qwex serve token add NAME`",
        )
    store = state_of(request).store
    if store.is_postgres:
        who = await run_in_threadpool(store.authenticate, credentials.credentials)
    else:
        who = store.authenticate(credentials.credentials)
    if who is None:
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    return who


def needs(role: Role) -> Any:
    """A dependency: the caller, when its token's role includes `role` (else 403)."""

    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if not who.may(role):
            raise ApiError(
                403,
                "forbidden",
                f"this needs the {role} role; the token {who.name!r} is a {who.role} "
                f"(an admin can make a {role} token: qwex serve token add NAME --role {role})",
            )
        return who

    return check


def role(needed: Role, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A route's `openapi_extra`: the least role it needs, for the spec's readers."""
    return {"x-qwex-role": needed.value, **(extra or {})}


Viewer = Annotated[Principal, Depends(needs(Role.VIEWER))]
"""Any valid token: the read-only routes."""
Member = Annotated[Principal, Depends(needs(Role.USER))]
"""A user or admin token: the routes that change something."""
State = Annotated[ServerState, Depends(_state)]
"""The running server's state (`state.ServerState`), for the services."""
JobId = Annotated[str, PathParam(max_length=64, description="the job's id")]
Sha = Annotated[str, PathParam(pattern=SHA256, description="sha256 of the snapshot (hex)")]


async def _visit_or_none(
    request: Request,
    qwex_session: Annotated[str | None, Cookie()] = None,
) -> sessions.Visit | None:
    store = state_of(request).store
    if store.is_postgres:
        return await run_in_threadpool(sessions.visit, state_of(request), qwex_session)
    return sessions.visit(state_of(request), qwex_session)


class SignInFirst(Exception):
    """A page asked for without a session: the answer is the sign-in page, never data."""

    def __init__(self, then: str) -> None:
        super().__init__(then)
        self.then = then


async def _page_visit(
    request: Request, visit: Annotated[sessions.Visit | None, Depends(_visit_or_none)]
) -> sessions.Visit:
    if visit is None:
        then = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInFirst(then)
    return visit


async def _data_visit(
    visit: Annotated[sessions.Visit | None, Depends(_visit_or_none)],
) -> sessions.Visit:
    if visit is None:
        raise ApiError(401, "unauthorized", "sign in on the dashboard first (/signin)")
    return visit


MaybeVisit = Annotated[sessions.Visit | None, Depends(_visit_or_none)]
"""The dashboard's signed-in browser, if the request has a valid session cookie."""
PageVisit = Annotated[sessions.Visit, Depends(_page_visit)]
"""A dashboard page's visitor: without a session, the sign-in page instead (`SignInFirst`)."""
DataVisit = Annotated[sessions.Visit, Depends(_data_visit)]
"""The visitor of the dashboard's JSON and streams: without a session, a 401."""
