"""Without inotify (not Linux, or out of inotify instances) the server's log streams still
move: every follower is woken each tick (qwex_remote/server/changes.py)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from server_support import gate_command, inotify_fds, make_server, submit, wait_status


def log_events(stream: httpx.Response, timeout: float = 60) -> Iterator[tuple[str, str]]:
    """(event, data) of each SSE event of a follow stream, keepalives left out; a failure
    when the next one takes over `timeout` s (keepalives keep the stream itself busy)."""
    event, data = "", ""
    deadline = time.monotonic() + timeout
    for line in stream.iter_lines():
        assert time.monotonic() < deadline, f"no event for {timeout}s"
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            yield event, data
            event, data = "", ""
            deadline = time.monotonic() + timeout


def test_without_inotify_a_follower_gets_each_line_while_the_job_runs(tmp_path: Path) -> None:
    stub = tmp_path / "no-inotify"
    stub.mkdir()
    (stub / "inotify_simple.py").write_text("raise ImportError('no inotify on this machine')\n")
    server = make_server(tmp_path / "srv")
    server.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(stub), os.environ.get("PYTHONPATH")) if p
    )
    server.add_token("alice")
    server.start()
    first, second = tmp_path / "first", tmp_path / "second"
    # "a", then "b" once the test says so, then the end once it says so again: "b" can reach
    # the stream only by a wake-up while the job runs (no row change, no first look).
    command = gate_command(str(first), "a", "b")
    command[-1] += f"; until [ -e {second} ]; do sleep 0.05; done"
    try:
        with server.client("alice") as alice:
            job = submit(alice, "quiet-1", command)
            wait_status(alice, job["id"], "running")
            with alice.stream(
                "GET", f"/jobs/{job['id']}/logs/follow", timeout=httpx.Timeout(30, read=60)
            ) as response:
                events = log_events(response)
                event, data = next(events)
                assert (event, json.loads(data)["data"]) == ("log", "a\n")
                assert server.proc is not None
                assert inotify_fds(server.proc.pid) == 0, "the server watches with inotify"
                first.touch()
                event, data = next(events)  # woken by the tick: nothing else changed
                assert (event, json.loads(data)["data"]) == ("log", "b\n")
                assert alice.get(f"/jobs/{job['id']}").json()["status"] == "running"
                second.touch()
                assert [e for e, _ in events][-1] == "end"
    finally:
        first.touch()
        second.touch()
        assert server.stop() in (0, -signal.SIGTERM)
