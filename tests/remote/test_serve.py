"""`qwex serve` as a user runs it: the token commands, the loopback rule, start-up cost,
PostgreSQL, a restart in the middle of a run, and the committed OpenAPI spec."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from server_support import (
    Server,
    gate_command,
    make_server,
    submit,
    wait_final,
    wait_logged,
    wait_status,
)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return make_server(tmp_path)


def test_token_commands(server: Server) -> None:
    secret = server.add_token("alice", "admin", cli=True)
    assert secret.startswith("qwex_") and len(secret) > 40
    again = server.cli("serve", "token", "add", "alice", *server.db_args())
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = server.cli("serve", "token", "add", "no spaces", *server.db_args())
    assert bad.returncode == 1 and "cannot name a token" in bad.stderr
    listed = server.cli("serve", "token", "list", "--json", *server.db_args())
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["revoked_at"]) for r in rows] == [("alice", "admin", None)]
    assert secret not in listed.stdout
    table = server.cli("serve", "token", "list", *server.db_args()).stdout
    assert "alice" in table and secret not in table
    assert server.cli("serve", "token", "revoke", "alice", *server.db_args()).returncode == 0
    gone = server.cli("serve", "token", "revoke", "alice", *server.db_args())
    assert gone.returncode == 1 and "no token named 'alice'" in gone.stderr


def test_a_token_from_a_file_is_added_once_and_authenticates(
    server: Server, tmp_path: Path
) -> None:
    """How the Helm chart bootstraps tokens from a Kubernetes Secret: each file's secret
    is added under its name at every start; the same secret again is a no-op, another
    secret under that name or a weak one is refused, and the secret is never printed."""
    given = "qwex_" + "A1b2" * 11
    path = tmp_path / "ci-bot"
    path.write_text(given + "\n")
    add = ("serve", "token", "add", "ci-bot", "--role", "admin", "--secret-file", str(path))
    first = server.cli(*add, "--exist-ok", *server.db_args())
    assert first.returncode == 0, first.stderr
    assert given not in first.stdout + first.stderr
    again = server.cli(*add, "--exist-ok", *server.db_args())
    assert again.returncode == 0 and "exists already" in again.stderr
    without = server.cli(*add, *server.db_args())
    assert without.returncode == 1 and "exists already" in without.stderr
    path.write_text("qwex_" + "Z9y8" * 11)
    other = server.cli(*add, "--exist-ok", *server.db_args())
    assert other.returncode == 1 and "another secret" in other.stderr
    weak = tmp_path / "weak"
    weak.write_text("qwex_short")
    short = server.cli(
        "serve", "token", "add", "weak", "--secret-file", str(weak), *server.db_args()
    )
    assert short.returncode == 1 and "Traceback" not in short.stderr
    assert "at least" in short.stderr
    server.tokens["ci-bot"] = given
    server.start()
    try:
        with server.client("ci-bot") as bot:
            assert bot.get("/jobs", params={"limit": 1}).status_code == 200
    finally:
        server.stop()


def test_a_non_loopback_bind_is_refused_while_no_token_exists(server: Server) -> None:
    result = server.cli("serve", "--host", "0.0.0.0", "--port", "1", *server.db_args())
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "qwex serve token add NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_database_url_is_one_clear_line(server: Server) -> None:
    url = "postgresql://nobody:secret-pw@127.0.0.1:1/none"
    result = server.cli("serve", "token", "list", "--database-url", url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot prepare the database" in result.stderr and "secret-pw" not in result.stderr


def test_a_bad_policy_is_named_before_the_server_starts(server: Server) -> None:
    (server.project / "qwex.toml").write_text(
        '[server]\nbackends = ["docker"]\ndefault_backend = "local"\n'
    )
    result = server.cli("serve", "--port", "1", *server.db_args())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "qwex.toml" in result.stderr and "default_backend 'local' is not one of" in result.stderr


def test_cli_start_up_imports_no_server_library(server: Server) -> None:
    """Not FastAPI, SQLAlchemy or uvicorn; `qwex --help` and `qwex run` not even the
    definition of `qwex serve`."""
    probe = (
        "import sys\nfrom qwex_core.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = {'fastapi', 'sqlalchemy', 'uvicorn', 'alembic', 'starlette', 'psycopg'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or "
        "m == 'qwex_remote.server.commands'))\n"
    )
    for args, expected in (
        (["--help"], "[]"),
        (["run", "--", "true"], "[]"),
        (["serve", "--help"], "['qwex_remote.server.commands']"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", probe, *args],
            cwd=server.project,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert out.strip().splitlines()[-1] == expected, (args, out)


@pytest.mark.postgres
def test_the_server_on_postgresql(tmp_path: Path, postgres_db: str) -> None:
    server = make_server(tmp_path)
    server.env["QWEX_SERVER_DATABASE_URL"] = postgres_db  # as an administrator may set it
    server.add_token("alice")
    server.start()
    try:
        with server.client("alice") as alice:
            job = submit(alice, "pg-1", ["sh", "-c", "echo on postgres; env"])
            assert wait_final(alice, job["id"])["status"] == "succeeded"
            out = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
            assert out.startswith("on postgres\n")
            assert "qwex_test" not in out, "a job must not see the database URL in its env"
    finally:
        server.stop()
    assert "database postgresql://qwex_test:***@127.0.0.1" in server.log_path.read_text()


def test_a_restart_reattaches_running_jobs_and_marks_vanished_ones_lost(server: Server) -> None:
    server.add_token("alice")
    server.start()
    gate = server.data_dir.parent / "go"  # the job goes on running until the test makes it
    with server.client("alice") as alice:
        goes_on = submit(alice, "r-1", gate_command(str(gate), "a", "b"))
        killed = submit(alice, "r-2", ["sh", "-c", "echo ready; sleep 60"])
        to_cancel = submit(alice, "r-3", ["sleep", "60"])
        for job in (goes_on, killed, to_cancel):
            wait_status(alice, job["id"], "running")
        # A log stream open at shutdown ends with a `shutdown` event, and does not hold it up.
        events: list[str] = []
        with alice.stream("GET", f"/jobs/{goes_on['id']}/logs/follow") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "id: 2,0"
            stopping = threading.Thread(target=server.stop)
            stopping.start()
            events = [line for line in lines if line.startswith("event: ")]
        stopping.join()
    assert events[-1] == "event: shutdown", events
    # While the server is down, the second job's agent and command vanish (a crash, a
    # reboot), and a cancel of the third is asked but not carried out yet.
    run_dir = next((server.data_dir / "jobs" / killed["id"] / ".qwex" / "runs").iterdir())
    agent_pid = int((run_dir / "agent.pid").read_text().split()[0])
    os.killpg(agent_pid, signal.SIGKILL)
    os.killpg(json.loads((run_dir / "run.json").read_text())["pid"], signal.SIGKILL)
    from qwex_remote.server.db import open_database
    from qwex_remote.server.store import ServerStore

    store = ServerStore(open_database(f"sqlite:///{server.data_dir / 'server.db'}"))
    store.cancel(to_cancel["id"], "cancelled by alice")
    server.start()
    try:
        with server.client("alice") as alice:
            # The job is still running when the restarted server takes it back.
            wait_logged(server, f"job {goes_on['id']}: re-attached")
            assert alice.get(f"/jobs/{goes_on['id']}").json()["status"] == "running"
            gate.touch()
            done = wait_final(alice, goes_on["id"])
            assert (done["status"], done["exit_code"]) == ("succeeded", 0)
            assert alice.get(f"/jobs/{goes_on['id']}/logs").json()["data"] == "a\nb\n"
            lost = wait_final(alice, killed["id"])
            assert lost["status"] == "lost", lost
            cancelled = wait_final(alice, to_cancel["id"])
            assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled by alice")
    finally:
        gate.touch()  # on a failure too: the job ends
        server.stop()


def test_the_committed_openapi_spec_is_what_the_app_produces() -> None:
    from qwex_remote.server.openapi import openapi_json

    committed = Path(__file__).parents[2] / "qwex-remote" / "openapi.json"
    produced = openapi_json()
    assert committed.read_text() == produced, (
        "qwex-remote/openapi.json is stale: python -m qwex_remote.server.openapi > "
        "qwex-remote/openapi.json"
    )
    spec = json.loads(produced)
    operations = {op["operationId"]: op for path in spec["paths"].values() for op in path.values()}
    assert {
        "health",
        "submit_job",
        "get_job",
        "list_jobs",
        "cancel_job",
        "get_logs",
        "follow_logs",
        "put_snapshot",
        "get_snapshot",
    } == set(operations)
    for name, op in operations.items():
        errors = {code for code in op["responses"] if code[0] in "45"}
        if name != "health":
            assert "401" in errors, name
        for code in errors:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (name, code)


@pytest.mark.docker
def test_a_restart_in_the_middle_of_a_docker_run_reattaches_it(
    server: Server, docker_ready: None
) -> None:
    server.add_token("alice")
    server.start()
    spec = {"backend": "docker", "image": "qwex-test/busybox"}
    with server.client("alice") as alice:
        # The job's folder is /workspace in the container: the test releases it from there.
        job = submit(alice, "d-1", gate_command("/workspace/go", "a", "b"), **spec)
        wait_status(alice, job["id"], "running", timeout=60)
        doomed = submit(alice, "d-2", ["sleep", "60"], **spec)
        wait_status(alice, doomed["id"], "running", timeout=60)
    server.stop()
    server.start()
    try:
        with server.client("alice") as alice:
            # Still running when the restarted server takes it back; then it ends.
            wait_logged(server, f"job {job['id']}: re-attached")
            assert alice.get(f"/jobs/{job['id']}").json()["status"] == "running"
            (server.data_dir / "jobs" / job["id"] / "go").touch()
            done = wait_final(alice, job["id"], timeout=60)  # not lost: found again and followed
            assert (done["status"], done["exit_code"]) == ("succeeded", 0)
            assert alice.get(f"/jobs/{job['id']}/logs").json()["data"] == "a\nb\n"
            alice.post(f"/jobs/{doomed['id']}/cancel")
            cancelled = wait_final(alice, doomed["id"], timeout=60)
            assert (cancelled["status"], cancelled["reason"]) == ("cancelled", "cancelled by alice")
    finally:
        (server.data_dir / "jobs" / job["id"] / "go").touch()  # on a failure too: it ends
        server.stop()
