"""Open log streams cost the server no thread: with 100 followers of a running job, the
server still answers `/health` and `GET /jobs` at once (issue 16, finding 4: about 40
streams used to take every worker thread, and `/health` timed out)."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest
from server_support import CONFIG, Server, make_server, submit, wait_status

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


def test_a_hundred_followers_leave_the_api_answering(server: Server) -> None:
    with server.client("alice") as alice, ExitStack() as streams:
        job = submit(alice, "busy-1", ["sh", "-c", "echo started; sleep 60"])
        wait_status(alice, job["id"], "running")
        socks = [streams.enter_context(open_follow(server, job["id"])) for _ in range(FOLLOWERS)]
        with httpx.Client(base_url=server.url, timeout=10) as anyone:
            started = time.monotonic()
            health = anyone.get("/health")
            took = time.monotonic() - started
        assert health.status_code == 200 and took < 2.0, f"/health took {took:.2f} s"
        started = time.monotonic()
        listed = alice.get("/jobs", params={"limit": 5}, timeout=10)
        took = time.monotonic() - started
        assert listed.status_code == 200 and took < 2.0, f"GET /jobs took {took:.2f} s"
        # Every stream is served: each got the job's first line.
        for sock in socks:
            assert b"started" in read_until(sock, b"started", 20)
        alice.post(f"/jobs/{job['id']}/cancel")
        # And each gets the end once the job is cancelled.
        for sock in socks:
            assert b"event: end" in read_until(sock, b"event: end", 30)


STAMPS = (
    "import time\n"
    "time.sleep(0.5)\n"
    "for i in range(8):\n"
    "    print(repr(time.time()), flush=True)\n"
    "    time.sleep(0.3)\n"
)


def test_a_line_reaches_the_stream_when_written_not_at_the_next_look(server: Server) -> None:
    """The stream wakes on the write itself (inotify): not at the once-a-second look that
    backs it up, which would put a line's median wait near half a second."""
    import json
    import statistics
    import sys

    lags = []
    with server.client("alice") as alice:
        job = submit(alice, "stamps-1", [sys.executable, "-c", STAMPS])
        with alice.stream("GET", f"/jobs/{job['id']}/logs/follow") as response:
            pending = ""
            for line in response.iter_lines():
                if line.startswith("event: end"):
                    break
                if line.startswith("data: "):
                    now = time.time()
                    pending += json.loads(line[6:]).get("data", "")
                    *complete, pending = pending.split("\n")
                    lags += [now - float(stamp) for stamp in complete]
    assert len(lags) == 8
    assert statistics.median(lags) < 0.25, lags
