"""The dashboard's HTML: Jinja2 templates shipped in the package, rendered with escaping on,
and the headers every dashboard answer carries.

The Content-Security-Policy lets a page run only the server's own script file
(`assets/dashboard.js`) and load only its own style sheet: no inline script, no handler
attribute, no other site. With the escaping, a command, label, reason or log line holding
HTML is text on the page, never markup.
"""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from qwex_remote import __version__
from qwex_remote.server.deps import SignInFirst
from qwex_remote.server.services.charts import seconds_text

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
"""On every dashboard answer: pages hold a team's data, so no cache keeps them either."""
ASSETS = files("qwex_remote.server") / "assets"
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def seconds(value: float | None) -> str:
    """A wait as the queue page's table shows it; empty when there is none."""
    return "" if value is None else seconds_text(value)


def _url(path: str, params: dict[str, str]) -> str:
    return f"{path}?{urlencode(params)}" if params else path


templates = Environment(
    loader=PackageLoader("qwex_remote.server", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["when"] = when
templates.globals["url"] = _url
templates.globals["version"] = __version__
templates.globals["seconds"] = seconds


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    page = templates.get_template(name).render(**context)
    return HTMLResponse(page, status_code=status, headers=HEADERS)


def redirect(to: str, **extra: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers={**HEADERS, **extra})


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this server only (never `//other.site`)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def form(request: Request) -> dict[str, str] | None:
    """A POSTed form's fields; None when the browser says it comes from another site (its
    Origin header names another host): such a form is refused whatever it holds."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        return None
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def asset(name: str) -> Response | None:
    """One of the files of `assets/` (the script and the style sheet), or None."""
    suffix = name[name.rfind(".") :] if "." in name else ""
    if "/" in name or suffix not in ASSET_TYPES:
        return None
    path = ASSETS / name
    if not path.is_file():
        return None
    headers = {**HEADERS, "Cache-Control": "public, max-age=3600"}
    return Response(path.read_bytes(), media_type=ASSET_TYPES[suffix], headers=headers)


def install(app: FastAPI) -> None:
    """A dashboard page asked for without a session answers with the sign-in page."""

    @app.exception_handler(SignInFirst)
    async def sign_in_first(_request: Request, exc: SignInFirst) -> Response:
        return redirect(_url("/signin", {"next": exc.then} if exc.then != "/" else {}))
