"""Helpers of the dashboard tests: a signed-in HTTP client, the CSRF token of a page, jobs."""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
from server_support import Server, submit

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


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
