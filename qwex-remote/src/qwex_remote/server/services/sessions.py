"""The dashboard's sessions: a browser signs in with a token and gets a cookie instead.

The cookie holds a random 256-bit secret; the database keeps only its sha256 (as for
tokens) and the name of the token it stands for, so revoking the token, or changing its
role, applies to its browsers at once, and a stolen database holds no usable cookie.
The CSRF token of a session is an HMAC of its secret: a page's forms carry it, a POST
must bring it back, and a page of another site can neither read the cookie nor the page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from qwex_remote.server import tokens
from qwex_remote.server.errors import ApiError
from qwex_remote.server.state import ServerState
from qwex_remote.server.store import Principal, now

COOKIE = "qwex_session"
LIFETIME = timedelta(hours=12)
"""How long a sign-in lasts; then the browser is asked for the token again."""


@dataclass(frozen=True)
class Visit:
    """A signed-in browser: who it is and the CSRF token its forms carry."""

    who: Principal
    csrf: str


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"qwex-dashboard-csrf", hashlib.sha256).hexdigest()


def sign_in(state: ServerState, token: str) -> str:
    """A new session for the holder of `token`: its cookie's value (401 for a bad token)."""
    who = state.store.authenticate(token) if tokens.SECRET.fullmatch(token) else None
    if who is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is unknown or revoked; an administrator creates one with "
            "`qwex serve token add NAME`",
        )
    secret = secrets.token_urlsafe(32)
    state.store.open_session(tokens.digest(secret), who.name, now() + LIFETIME)
    return secret


def visit(state: ServerState, cookie: str | None) -> Visit | None:
    """The signed-in browser with this cookie, or None (no cookie, expired, revoked)."""
    if not cookie or len(cookie) > 128:
        return None
    who = state.store.session_principal(tokens.digest(cookie))
    return None if who is None else Visit(who, csrf_token(cookie))


def sign_out(state: ServerState, cookie: str) -> None:
    state.store.end_session(tokens.digest(cookie))


def check_csrf(visit: Visit, sent: str | None) -> None:
    """403 unless a form brought back this session's CSRF token."""
    if not sent or not hmac.compare_digest(sent.encode(), visit.csrf.encode()):
        raise ApiError(
            403,
            "forbidden",
            "this form is stale or came from another site (no valid CSRF token); "
            "reload the page and try again",
        )
