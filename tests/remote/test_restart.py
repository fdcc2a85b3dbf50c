"""Nothing that never ran is `lost`, and nothing runs twice: a server killed (SIGKILL)
between claiming a job and starting it, or between starting its run and noting it in the
database, runs the job exactly once after a restart. A second `qwex serve` on a taken port
does nothing but say so.

The kill lands in its window deterministically: a trigger of the test's own PostgreSQL
makes the worker's update wait on an advisory lock the test holds, and the test kills the
server once that update waits (no sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from private_postgres import PrivatePostgres, private_postgres
from server_support import Server, make_server, submit, wait_final, wait_status

LOCK = 4242


@pytest.fixture
def pg() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


def _hold_update(url: str, column: str) -> psycopg.Connection[tuple[object, ...]]:
    """Make the first update that sets `jobs.<column>` wait until the returned connection
    lets go (or closes)."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(
        f"""
        create or replace function qwex_test_hold() returns trigger as $$
        begin perform pg_advisory_xact_lock({LOCK}); return new; end $$ language plpgsql;
        create trigger qwex_test_hold before update on jobs for each row
        when (old.{column} is null and new.{column} is not null)
        execute function qwex_test_hold();
        """
    )
    conn.execute(f"select pg_advisory_lock({LOCK})")
    return conn


def _wait_until_held(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    deadline = time.monotonic() + 30
    query = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
    while conn.execute(query).fetchone() == (0,):
        assert time.monotonic() < deadline, "the worker never reached the held update"
        time.sleep(0.02)


def _release(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    conn.execute("drop trigger qwex_test_hold on jobs")
    conn.execute(f"select pg_advisory_unlock({LOCK})")
    conn.close()


def _kill_in_window(tmp_path: Path, pg: PrivatePostgres, column: str) -> tuple[Server, Path]:
    """A server killed while the worker's update setting `column` waits, then restarted;
    returns it and the file the job appends a line to each time it runs."""
    srv = make_server(tmp_path / "server", database_url=pg.url)
    srv.add_token("alice")
    srv.start()
    counter = tmp_path / "ran"
    held = _hold_update(pg.url, column)
    try:
        submit(srv.client("alice"), "s1", ["sh", "-c", f"echo ran >> {counter}; sleep 0.5"])
        _wait_until_held(held)
        assert srv.proc is not None
        srv.proc.kill()
        srv.proc.wait()
    finally:
        _release(held)
    srv.start()
    return srv, counter


def test_a_job_claimed_but_not_started_goes_back_to_the_queue(
    tmp_path: Path, pg: PrivatePostgres
) -> None:
    srv, counter = _kill_in_window(tmp_path, pg, "job_dir")
    try:
        api = srv.client("alice")
        job = wait_final(api, api.get("/jobs").json()["items"][0]["id"])
        assert job["status"] == "succeeded", job
        assert counter.read_text() == "ran\n"
        log = srv.log_path.read_text()
        assert "back in the queue" in log and "Traceback" not in log, log
    finally:
        srv.stop()


def test_a_run_started_but_not_noted_is_re_attached_not_run_again(
    tmp_path: Path, pg: PrivatePostgres
) -> None:
    srv, counter = _kill_in_window(tmp_path, pg, "run_id")
    try:
        api = srv.client("alice")
        job = wait_final(api, api.get("/jobs").json()["items"][0]["id"])
        assert job["status"] == "succeeded", job
        assert counter.read_text() == "ran\n"
        assert "re-attached" in srv.log_path.read_text()
        assert api.get(f"/jobs/{job['id']}/logs").status_code == 200
    finally:
        srv.stop()


def test_a_second_server_on_a_taken_port_does_nothing_else(tmp_path: Path) -> None:
    srv = make_server(tmp_path / "server")
    srv.add_token("alice")
    srv.start()
    try:
        api = srv.client("alice")
        job = submit(api, "s1", ["sh", "-c", "sleep 2; echo done"])
        wait_status(api, job["id"], "running")
        second = srv.cli("serve", "--port", str(srv.port), *srv.db_args())
        assert second.returncode == 1, (second.stdout, second.stderr)
        assert second.stdout == ""
        assert second.stderr.splitlines() == [
            f"qwex: error: port {srv.port} on 127.0.0.1 is in use (another qwex serve?); "
            "stop it, or choose another port with --port"
        ]
        done = wait_final(api, job["id"])
        assert (done["status"], done["exit_code"]) == ("succeeded", 0)
        assert api.get(f"/jobs/{job['id']}/logs").json()["data"] == "done\n"
    finally:
        assert srv.stop() in (0, -15)
    assert "re-attached" not in srv.log_path.read_text()
