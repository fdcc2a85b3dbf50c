"""A database outage is an outage, not a failure: PostgreSQL stopped and started again under
a following `qwex run -b remote`. The client gets every line and the job's exit code, says
once that the server is degraded and once that it is back; a request during the outage gets
a plain 503 (no host, port or driver text); the server logs one line when the outage starts
and one when it ends, no traceback, and records the job's end once the database is back."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from private_postgres import PrivatePostgres, private_postgres
from server_support import CONFIG, QWEX, Server, clean_env, make_server, wait_final

LINES = 24
JOB = f"for i in $(seq 1 {LINES}); do echo line $i; sleep 0.4; done; exit 3"


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def server(tmp_path: Path, pg: PrivatePostgres) -> Iterator[Server]:
    srv = make_server(tmp_path / "server", database_url=pg.url)
    srv.add_token("alice")
    srv.start()
    yield srv
    srv.stop()


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text() if path.exists() else ""):
        assert proc.poll() is None, path.read_text()
        assert time.monotonic() < deadline, f"{text!r} never came: {path.read_text()}"
        time.sleep(0.05)


@pytest.mark.postgres
def test_a_following_client_rides_out_a_database_outage(
    tmp_path: Path, pg: PrivatePostgres, server: Server
) -> None:
    client, out, err = following_client(tmp_path, server)
    try:
        _wait_for(out, "line 3\n", client)
        pg.stop()
        api = server.client("alice")
        during = api.get("/jobs", params={"limit": 5})
        # The outage lasts until the following client has seen it (it probes and follows
        # meanwhile), then the database comes back.
        _wait_for(err, "server degraded", client)
        pg.start()
        assert client.wait(timeout=60) == 3, err.read_text()
    finally:
        if client.poll() is None:
            client.kill()

    # The request during the outage: a plain 503, nothing of the database in it.
    assert during.status_code == 503, during.text
    error = during.json()["error"]
    assert error["code"] == "unavailable"
    assert error["message"] == "the server's database is unavailable; try again shortly"
    for leak in (str(pg.port), "127.0.0.1", "psycopg", "postgres", "connection"):
        assert leak not in during.text

    # The client: every line, the job's code, one line for the outage and one for its end.
    assert out.read_text() == "".join(f"line {i}\n" for i in range(1, LINES + 1))
    stderr = err.read_text()
    assert "Traceback" not in stderr and "internal_error" not in stderr, stderr
    assert stderr.count("server degraded") == 1, stderr
    assert "still following" in stderr
    assert stderr.count("answers again") == 1, stderr
    assert "failed: exit code 3" in stderr

    # The server recorded the job's end, and logged the outage once, without a traceback.
    job = wait_final(api, api.get("/jobs").json()["items"][0]["id"])
    assert (job["status"], job["exit_code"]) == ("failed", 3)
    log = server.log_path.read_text()
    assert "Traceback" not in log, log
    assert log.count("the database is unavailable") == 1, log
    assert log.count("the database is back") == 1, log


@pytest.mark.postgres
def test_a_job_that_ends_during_the_outage_is_recorded_when_the_database_is_back(
    pg: PrivatePostgres, server: Server
) -> None:
    api = server.client("alice")
    job = api.post(
        "/jobs", json={"submission_id": "s1", "command": ["sh", "-c", "sleep 1; echo done"]}
    ).json()
    deadline = time.monotonic() + 30
    while api.get(f"/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pg.stop()
    # The job ends while the database is down: its run record (on the server's disk) says
    # so before the database comes back, whatever the machine's speed.
    [record] = (server.data_dir / "jobs" / job["id"] / ".qwex" / "runs").glob("*/run.json")
    deadline = time.monotonic() + 60
    while json.loads(record.read_text())["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job did not end during the outage"
        time.sleep(0.05)
    assert api.get(f"/jobs/{job['id']}").status_code == 503  # how soon: the remote bench
    pg.start()
    done = wait_final(api, job["id"], timeout=30)
    assert (done["status"], done["exit_code"]) == ("succeeded", 0)
    assert api.get(f"/jobs/{job['id']}/logs").json()["data"] == "done\n"
    log = server.log_path.read_text()
    assert "Traceback" not in log, log
    assert log.count("the database is unavailable") == 1, log


def test_a_following_client_says_once_that_the_server_is_gone_and_once_that_it_is_back(
    tmp_path: Path,
) -> None:
    """The server itself stopped for a few seconds (SQLite: no PostgreSQL needed)."""
    srv = make_server(tmp_path / "server")
    srv.add_token("alice")
    srv.start()
    client, out, err = following_client(tmp_path, srv)
    try:
        _wait_for(out, "line 3\n", client)
        srv.stop()
        _wait_for(err, "server unreachable", client)
        srv.start()
        assert client.wait(timeout=60) == 3, err.read_text()
    finally:
        if client.poll() is None:
            client.kill()
        srv.stop()
    assert out.read_text() == "".join(f"line {i}\n" for i in range(1, LINES + 1))
    stderr = err.read_text()
    assert stderr.count("server unreachable") == 1, stderr
    assert stderr.count("answers again") == 1, stderr
    assert "Traceback" not in stderr


def test_an_unexpected_error_is_a_plain_500_with_its_details_in_the_log(tmp_path: Path) -> None:
    """A job row the API cannot show (a status written by hand): the 500 names nothing
    of the exception; the server's log has it."""
    from qwex_remote.server.db import open_database
    from qwex_remote.server.store import ServerStore

    srv = make_server(tmp_path / "server")
    srv.add_token("alice")
    srv.start()
    try:
        store = ServerStore(open_database(f"sqlite:///{srv.data_dir / 'server.db'}"))
        job, _ = store.submit(
            submitter="alice",
            submission_id="s1",
            spec={"command": ["true"]},
            spec_hash="h",
            backend="local",
            snapshot=None,
        )
        store.update(job.id, status="mangled", claimed_by="nobody")
        answer = srv.client("alice").get(f"/jobs/{job.id}")
    finally:
        srv.stop()
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {
            "code": "internal_error",
            "message": "the server failed on this request; its administrator finds the "
            "details in its log",
        }
    }
    assert "mangled" in srv.log_path.read_text()


@pytest.mark.postgres
def test_a_log_stream_stays_open_through_an_outage_and_ends_with_the_job(
    tmp_path: Path, pg: PrivatePostgres
) -> None:
    """The stream has sent its headers: it keeps going through the outage (keepalives, no
    cut connection, no traceback in the log) and gets the job's end once it is back."""
    config = CONFIG.replace("[server]\n", "[server]\nconcurrency = 0\n")
    srv = make_server(tmp_path / "server", database_url=pg.url, config=config)
    srv.add_token("alice")
    srv.start()
    try:
        api = srv.client("alice")
        job = api.post("/jobs", json={"submission_id": "s1", "command": ["true"]}).json()
        events: list[str] = []
        with api.stream("GET", f"/jobs/{job['id']}/logs/follow") as stream:
            lines = stream.iter_lines()
            assert stream.status_code == 200
            pg.stop()
            deadline = time.monotonic() + 3
            for line in lines:
                events.append(line)
                if time.monotonic() > deadline:
                    break
            pg.start()
            wait_for_answer(api)
            assert api.post(f"/jobs/{job['id']}/cancel").status_code == 200
            for line in lines:
                events.append(line)
                if line.startswith("event: end"):
                    break
    finally:
        srv.stop()
    assert events.count(": keepalive") >= 2, events
    assert "event: end" in events and "event: shutdown" not in events, events
    log = srv.log_path.read_text()
    assert "Traceback" not in log and log.count("the database is unavailable") == 1, log


def wait_for_answer(api: httpx.Client, timeout: float = 30) -> None:
    """Until the server's database answers again (a 503 meanwhile)."""
    deadline = time.monotonic() + timeout
    while api.get("/jobs", params={"limit": 1}).status_code != 200:
        assert time.monotonic() < deadline, "the database did not come back"
        time.sleep(0.2)


def following_client(tmp_path: Path, server: Server) -> tuple[subprocess.Popen[str], Path, Path]:
    """`qwex run -b remote` of JOB as alice from a laptop project, its output in files."""
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    (laptop / "qwex.toml").write_text(f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\n')
    env = {**clean_env(laptop), "QWEX_REMOTE_TOKEN": server.tokens["alice"]}
    out, err = tmp_path / "client.out", tmp_path / "client.err"
    with out.open("w") as fo, err.open("w") as fe:
        client = subprocess.Popen(
            [QWEX, "run", "-b", "remote", "--", "sh", "-c", JOB],
            cwd=laptop,
            env=env,
            stdout=fo,
            stderr=fe,
            text=True,
        )
    return client, out, err
