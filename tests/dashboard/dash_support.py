"""Helpers of the dashboard tests: a signed-in HTTP client, the CSRF token of a page, jobs."""

from __future__ import annotations

import contextlib
import html
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from server_support import Server, make_server, submit

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ROLES = {"alice": "user", "bob": "user", "root": "admin", "vera": "viewer"}


def root_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


@contextlib.contextmanager
def signed_in(server: Server, who: str) -> Iterator[httpx.Client]:
    """A client holding the session cookie `who` got by signing in on the form."""
    with httpx.Client(base_url=root_url(server), timeout=30) as client:
        answer = client.post("/signin", data={"token": server.tokens[who]})
        assert answer.status_code == 303, answer.text
        assert "qwex_session" in client.cookies
        yield client


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(page.text)
    assert found, f"no CSRF token in {page.url}"
    return html.unescape(found.group(1))


def job(server: Server, who: str, sid: str, command: list[str], **spec: Any) -> dict[str, Any]:
    with server.client(who) as api:
        return submit(api, sid, command, **spec)


@contextlib.contextmanager
def started(root: Path, config: str) -> Iterator[Server]:
    """A started server under `root` with the users of ROLES; on the way out it must stop
    cleanly and its log must hold no token."""
    srv = make_server(root, config=config)
    for name, role in ROLES.items():
        srv.add_token(name, role)
    srv.start()
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)
    log = srv.log_path.read_text()
    assert not [name for name, secret in srv.tokens.items() if secret in log], "a token was logged"
