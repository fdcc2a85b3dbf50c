"""Open log streams cost the server no thread: with 100 followers of a running job, the
server still answers `/health` and `GET /jobs` (about 40 streams used to take every
worker thread, and `/health` timed out)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from server_support import (
    CONFIG,
    Server,
    gate_command,
    inotify_fds,
    make_server,
    submit,
    wait_status,
)

FOLLOWERS = 100
KEEPALIVE = "sse_keepalive = 0.3\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default keepalive (15 s): a stream waits that long between sends."""
    srv = make_server(tmp_path_factory.mktemp("server"), config=CONFIG.replace(KEEPALIVE, ""))
    srv.add_token("alice")
    srv.start()
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)


def open_follow(server: Server, job_id: str) -> socket.socket:
    """A follow stream on a socket of its own, its request sent, its answer left unread."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    request = (
        f"GET /api/v1/jobs/{job_id}/logs/follow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.tokens['alice']}\r\nAccept: text/event-stream\r\n\r\n"
    )
    sock.sendall(request.encode())
    return sock


def read_until(sock: socket.socket, marker: bytes, seconds: float) -> bytes:
    sock.settimeout(seconds)
    got = b""
    while marker not in got:
        part = sock.recv(65536)
        if not part:
            break
        got += part
    return got


def test_a_hundred_followers_leave_the_api_answering(server: Server, tmp_path: Path) -> None:
    """With 100 streams open on a running job, `/health` and `GET /jobs` answer while the
    job still runs: a server whose streams held its workers would answer only once the
    job ended and its streams closed (how fast it answers is measured by the remote
    benchmark, `nox -s bench -- remote`)."""
    gate = tmp_path / "gate"
    with server.client("alice") as alice, ExitStack() as streams:
        job = submit(alice, "busy-1", gate_command(str(gate), "started", "done"))
        wait_status(alice, job["id"], "running")
        socks = [streams.enter_context(open_follow(server, job["id"])) for _ in range(FOLLOWERS)]
        try:
            with httpx.Client(base_url=server.url, timeout=120) as anyone:
                assert anyone.get("/health").status_code == 200
            assert alice.get("/jobs", params={"limit": 5}, timeout=120).status_code == 200
            assert alice.get(f"/jobs/{job['id']}").json()["status"] == "running"
            # Every stream is served: each got the job's first line, the job still running.
            for sock in socks:
                assert b"started" in read_until(sock, b"started", 60)
            assert alice.get(f"/jobs/{job['id']}").json()["status"] == "running"
        finally:
            gate.touch()
        # And each gets the end once the job has ended.
        for sock in socks:
            assert b"event: end" in read_until(sock, b"event: end", 60)


def test_a_line_reaches_the_stream_through_a_watch_on_the_write(
    server: Server, tmp_path: Path
) -> None:
    """The stream wakes on the write itself (inotify), not at the once-a-second look that
    backs it up: the server watches while a stream is open, and a line written while the
    job runs reaches the stream before the job goes on. (How soon is the remote
    benchmark's figure, `nox -s bench -- remote`; without inotify:
    test_follow_without_inotify.py.)"""
    import json

    gate = tmp_path / "gate"
    with server.client("alice") as alice:
        job = submit(alice, "stamps-1", gate_command(str(gate), "first", "second"))
        wait_status(alice, job["id"], "running")
        try:
            with alice.stream("GET", f"/jobs/{job['id']}/logs/follow", timeout=120) as response:
                data = ""
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        data += json.loads(line[6:]).get("data", "")
                    if "first\n" in data:
                        break
                assert server.proc is not None
                assert inotify_fds(server.proc.pid) >= 1, "the server does not watch the logs"
                assert alice.get(f"/jobs/{job['id']}").json()["status"] == "running"
        finally:
            gate.touch()
