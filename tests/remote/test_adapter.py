"""The adapter (`JobAPIClient` over the generated client) against a real `qwex serve` on loopback.

`nox -s gen` runs this module against a freshly generated client before keeping it.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qwex_remote.adapter import GeneratedClientAdapter
from qwex_remote.protocol import (
    APIError,
    JobEnd,
    JobState,
    LogPiece,
    ServerShutdown,
    Submission,
    Unreachable,
)
from server_support import FINAL, Server, free_port, make_server, team_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("adapter")) as srv:
        yield srv


def root_url(server: Server) -> str:
    return server.url.removesuffix("/api/v1")


@pytest.fixture
def alice(server: Server) -> Iterator[GeneratedClientAdapter]:
    with GeneratedClientAdapter(root_url(server), server.tokens["alice"], timeout=10) as api:
        yield api


def job(command: str, **spec: Any) -> Submission:
    return Submission(submission_id=uuid.uuid4().hex, command=["sh", "-c", command], **spec)


def wait_final(api: GeneratedClientAdapter, job_id: str, timeout: float = 60) -> JobState:
    deadline = time.monotonic() + timeout
    while (state := api.get(job_id)).status not in FINAL:
        assert time.monotonic() < deadline, f"job {job_id} did not end"
        time.sleep(0.05)
    return state


def test_health_needs_no_token_and_base_url_may_end_in_the_api_prefix(server: Server) -> None:
    for url in (root_url(server), server.url, server.url + "/"):
        with GeneratedClientAdapter(url) as anonymous:
            health = anonymous.health()
        assert (health.server_version, health.api_version) == ("0.1.0", "1")


@pytest.mark.parametrize("token", [None, "qwex_not-a-real-token"])
def test_no_token_or_a_wrong_one_is_a_401_api_error(server: Server, token: str | None) -> None:
    with GeneratedClientAdapter(root_url(server), token) as api:
        for call in (
            lambda: api.submit(job("true")),
            lambda: api.get("x"),
            lambda: api.list(),
            lambda: api.cancel("x"),
            lambda: api.has_snapshot("0" * 64),
            lambda: api.logs("x", "stdout", 0, 10),
            lambda: next(api.follow("x", {})),
        ):
            with pytest.raises(APIError) as caught:
                call()
            assert (caught.value.status, caught.value.code) == (401, "unauthorized")
            assert "token" in str(caught.value)


def test_a_retried_submission_is_the_same_job_and_another_spec_a_409(
    alice: GeneratedClientAdapter,
) -> None:
    submission = job("echo hi", labels={"team": "a"}, env={"X": "1"})
    first = alice.submit(submission)
    assert (first.submitter, first.backend) == ("alice", "local")
    assert first.status in ("pending", "running", "succeeded") and first.created_at
    again = alice.submit(submission)
    assert again.id == first.id
    with pytest.raises(APIError) as caught:
        alice.submit(Submission(submission_id=first.submission_id, command=["false"]))
    assert (caught.value.status, caught.value.code) == (409, "submission_conflict")
    assert first.id in str(caught.value)
    with pytest.raises(APIError) as refused:
        alice.submit(job("true", backend="nope"))
    assert refused.value.status == 403 and refused.value.code == "policy_refused"


def test_get_list_by_cursor_and_cancel(server: Server, alice: GeneratedClientAdapter) -> None:
    with GeneratedClientAdapter(root_url(server), server.tokens["bob"]) as bob:
        made = [bob.submit(job("sleep 60")) for _ in range(3)]
        assert bob.get(made[0].id).submission_id == made[0].submission_id
        first = bob.list(submitter="bob", limit=2)
        assert [j.id for j in first.items] == [made[2].id, made[1].id]  # newest first
        assert first.next_cursor is not None
        rest = bob.list(submitter="bob", limit=2, cursor=first.next_cursor)
        assert [j.id for j in rest.items] == [made[0].id] and rest.next_cursor is None
        with pytest.raises(APIError) as forbidden:
            alice.cancel(made[0].id)
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
        for j in made:
            assert bob.cancel(j.id).id == j.id
        assert {wait_final(bob, j.id).status for j in made} == {"cancelled"}
        cancelled = bob.list(submitter="bob", statuses=["cancelled"])
        assert {j.id for j in cancelled.items} == {j.id for j in made}
        assert all(j.cancel_requested and j.finished_at for j in cancelled.items)
    with pytest.raises(APIError) as missing:
        alice.get("no-such-job")
    assert (missing.value.status, missing.value.code) == (404, "not_found")


def test_snapshots_upload_once_and_a_refused_upload_says_why(
    alice: GeneratedClientAdapter, tmp_path: Path
) -> None:
    from qwex_core.snapshot import make_snapshot

    project = tmp_path / "code"
    project.mkdir()
    (project / "data.txt").write_text(uuid.uuid4().hex)
    snap = make_snapshot(project, limit=1 << 20)
    archive = tmp_path / "snap.tar.gz"
    archive.write_bytes(snap.data)
    assert not alice.has_snapshot(snap.sha256)
    alice.put_snapshot(snap.sha256, archive)
    assert alice.has_snapshot(snap.sha256)
    alice.put_snapshot(snap.sha256, archive)  # idempotent
    with pytest.raises(APIError) as mismatch:
        alice.put_snapshot("a" * 64, archive)
    assert (mismatch.value.status, mismatch.value.code) == (400, "snapshot_digest_mismatch")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(200_000))  # over the test server's 65536 bytes
    with pytest.raises(APIError) as too_big:
        alice.put_snapshot(hashlib.sha256(big.read_bytes()).hexdigest(), big)
    assert (too_big.value.status, too_big.value.code) == (413, "too_large")
    assert "max_snapshot_bytes" in str(too_big.value)
    ran = alice.submit(job("cat data.txt", snapshot=snap.sha256))
    assert wait_final(alice, ran.id).status == "succeeded"
    assert alice.logs(ran.id, "stdout", 0, 1000).data == (project / "data.txt").read_bytes()


def test_logs_by_byte_offsets(alice: GeneratedClientAdapter) -> None:
    ran = alice.submit(job("printf 'héllo\\n'; echo oops >&2; exit 3"))
    end = wait_final(alice, ran.id)
    assert (end.status, end.exit_code, end.reason) == ("failed", 3, "exit code 3")
    head = alice.logs(ran.id, "stdout", 0, 2)  # 'é' is 2 bytes: split, each byte kept
    assert (head.data, head.next_offset, head.final) == (b"h\xc3", 2, False)
    tail = alice.logs(ran.id, "stdout", head.next_offset, 100)
    assert (tail.data, tail.offset, tail.next_offset, tail.final) == (b"\xa9llo\n", 2, 7, True)
    err = alice.logs(ran.id, "stderr", 0, 100)
    assert (err.stream, err.data, err.final) == ("stderr", b"oops\n", True)


def test_follow_yields_the_output_then_the_end_and_resumes_from_offsets(
    alice: GeneratedClientAdapter,
) -> None:
    ran = alice.submit(job("echo first; echo warn >&2; sleep 0.5; echo second; exit 4"))
    events = list(alice.follow(ran.id, {}))
    assert events[-1] == JobEnd(status="failed", reason="exit code 4", exit_code=4)
    pieces = [e for e in events[:-1] if isinstance(e, LogPiece)]
    assert len(pieces) == len(events) - 1
    assert b"".join(p.data for p in pieces if p.stream == "stdout") == b"first\nsecond\n"
    assert b"".join(p.data for p in pieces if p.stream == "stderr") == b"warn\n"
    # Resuming from "first\n" (6 bytes) and all of stderr sends nothing twice.
    again = list(alice.follow(ran.id, {"stdout": 6, "stderr": 5}))
    assert again == [
        LogPiece(stream="stdout", offset=6, next_offset=13, data=b"second\n"),
        JobEnd(status="failed", reason="exit code 4", exit_code=4),
    ]


def test_a_quiet_stream_outlives_its_read_timeout_through_keepalives(server: Server) -> None:
    # The test server sends a keepalive every 0.3 s; the job is silent for 1.5 s.
    with GeneratedClientAdapter(
        root_url(server), server.tokens["alice"], stream_timeout=0.9
    ) as api:
        ran = api.submit(job("printf a; sleep 1.5; printf b"))
        events = list(api.follow(ran.id, {}))
    assert b"".join(e.data for e in events if isinstance(e, LogPiece)) == b"ab"
    assert events[-1] == JobEnd(status="succeeded", reason="exit code 0", exit_code=0)


def test_a_server_stopping_mid_follow_is_a_server_shutdown(tmp_path: Path) -> None:
    srv = make_server(tmp_path)
    srv.add_token("alice")
    srv.start()
    try:
        with GeneratedClientAdapter(root_url(srv), srv.tokens["alice"]) as api:
            ran = api.submit(job("echo up; sleep 5"))  # outlives the server, not the test by long
            events = api.follow(ran.id, {})
            first = next(events)
            assert isinstance(first, LogPiece) and first.data == b"up\n"
            assert srv.proc is not None
            threading.Timer(0.2, srv.proc.send_signal, (signal.SIGTERM,)).start()
            rest = list(events)
        assert len(rest) == 1 and isinstance(rest[0], ServerShutdown), rest
        assert "resume" in rest[0].message
    finally:
        srv.stop()


def test_a_closed_port_is_unreachable_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with GeneratedClientAdapter(url, "t", timeout=5) as api:
        for call in (api.health, lambda: api.get("x"), lambda: next(api.follow("x", {}))):
            with pytest.raises(Unreachable) as caught:
                call()
            assert url in str(caught.value) and "qwex serve" in str(caught.value)


def test_something_else_than_a_qwex_server_is_named_as_such() -> None:
    class NotQwex(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            code = 200 if self.path.endswith("/health") else 404
            self.send_response(code)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotQwex)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with GeneratedClientAdapter(f"http://127.0.0.1:{httpd.server_port}", "t") as api:
            with pytest.raises(APIError) as not_found:
                api.get("x")
            assert (not_found.value.status, not_found.value.code) == (404, "http_error")
            assert "<html>hello</html>" in str(not_found.value)
            assert "base_url" in str(not_found.value)
            with pytest.raises(APIError) as garbled:
                api.health()
            assert garbled.value.code == "invalid_response"
            assert "not the qwex API" in str(garbled.value)
    finally:
        httpd.shutdown()
        httpd.server_close()
