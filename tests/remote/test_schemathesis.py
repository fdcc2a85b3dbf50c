"""Schemathesis against the COMMITTED spec (qwex-remote/openapi.json), calling a real
`qwex serve` on loopback with a valid token: no 5xx, and every response declared by the
spec (status code, content type, body schema).

The spec is the one clients are generated from, so a response that breaks it breaks them.
The server only queues jobs here (`concurrency = 0`): generated commands are never run.
Hypothesis is derandomized and the examples per operation few, so the run is repeatable
and bounded.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import checks
from schemathesis.generation.case import Case
from server_support import Server, make_server, submit

SPEC = Path(__file__).resolve().parents[2] / "qwex-remote" / "openapi.json"
CONFIG = """\
[server]
backends = ["local"]
default_backend = "local"
max_snapshot_bytes = 4096
sse_keepalive = 0.2
concurrency = 0
"""
MAX_EXAMPLES = 60
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]

schema = schemathesis.openapi.from_path(SPEC)
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("schemathesis"), config=CONFIG)
    srv.add_token("fuzz", "admin")
    srv.start()
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)
    assert "Traceback" not in srv.log_path.read_text(), srv.log_path.read_text()


@schema.parametrize()
def test_the_server_keeps_to_its_committed_spec(case: Case[Any], server: Server) -> None:
    base = server.url.removesuffix("/api/v1")
    headers = {"Authorization": f"Bearer {server.tokens['fuzz']}"}
    case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=10)


def test_a_body_that_is_not_utf8_json_is_a_declared_422(server: Server) -> None:
    """Found by schemathesis: the framework's own 400 was not in the spec."""
    with server.client("fuzz") as client:
        response = client.post(
            "/jobs", content=b"\xefJ\x17", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_cursor_past_every_job_is_the_first_page_not_a_500(server: Server) -> None:
    """Found by schemathesis: a cursor over 2**63 overflowed the database's integer."""
    with server.client("fuzz") as client:
        submit(client, "queued-1", ["true"])  # queued only: this server runs nothing
        first = client.get("/jobs", params={"limit": 3})
        past = client.get("/jobs", params={"cursor": "9" * 40, "limit": 3})
    assert past.status_code == 200, past.text
    assert past.json()["items"] == first.json()["items"] != []


def test_a_memory_of_true_is_a_declared_422(server: Server) -> None:
    """Found by schemathesis: `true` passed as a memory size and the policy check then
    failed on it with a 500."""
    with server.client("fuzz") as client:
        response = client.post(
            "/jobs", json={"submission_id": "m-1", "command": ["x"], "resources": {"memory": True}}
        )
    assert response.status_code == 422, response.text
    assert "memory" in response.json()["error"]["message"]
