"""`qwex run --backend remote` end to end: the real CLI against a real `qwex serve` on loopback
(SQLite, and PostgreSQL), as a user types it. Every refusal is one clear line, no traceback."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import (
    QWEX,
    Server,
    clean_env,
    gate_command,
    make_server,
    qwex_cli,
    team_server,
    wait_final,
    wait_logged,
)

DOCKER_CONFIG = """\
[server]
backends = ["docker"]
default_backend = "docker"
images = ["qwex-test/*"]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def laptop(root: Path, url: str) -> Path:
    """A user's project that submits to the server at `url` (its root, without /api/v1)."""
    project = root / "laptop"
    project.mkdir(parents=True, exist_ok=True)
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "{url}"\n')
    return project


@pytest.fixture
def project(tmp_path: Path, server: Server) -> Path:
    return laptop(tmp_path, f"http://127.0.0.1:{server.port}")


def qwex(
    project: Path, *args: str, token: str | None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    if token is not None:
        env["QWEX_REMOTE_TOKEN"] = token
    result = qwex_cli(*args, cwd=project, env=env, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qwex: error: "), result.stderr
    return lines[0]


def test_run_follows_the_job_and_exits_with_its_code(project: Path, server: Server) -> None:
    alice = server.tokens["alice"]
    run = qwex(
        project,
        "run",
        "-b",
        "remote",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
        token=alice,
    )
    assert run.returncode == 3
    assert run.stdout == "out\n"
    assert "err\n" in run.stderr and "failed: exit code 3" in run.stderr
    listed = json.loads(qwex(project, "list", "--json", token=alice).stdout)
    assert [(r["backend"], r["status"], r["exit_code"]) for r in listed] == [
        ("remote", "failed", 3)
    ]
    with server.client("alice") as client:  # the server ran it, as alice
        # The server's database follows its run within a worker tick: the CLI may be first.
        job = wait_final(client, listed[0]["backend_data"]["job_id"])
    assert (job["submitter"], job["status"], job["submission_id"]) == (
        "alice",
        "failed",
        listed[0]["id"],
    )


def test_detach_then_logs_follow_then_status(project: Path, server: Server) -> None:
    alice = server.tokens["alice"]
    started = qwex(
        project,
        "run",
        "-d",
        "-b",
        "remote",
        "--",
        "sh",
        "-c",
        "echo one; sleep 1; echo two",
        token=alice,
    )
    assert started.returncode == 0
    run_id = started.stdout.strip()
    followed = qwex(project, "logs", "-f", run_id, token=alice)
    assert (followed.returncode, followed.stdout) == (0, "one\ntwo\n")
    status = json.loads(qwex(project, "status", "--json", run_id, token=alice).stdout)
    assert (status["status"], status["exit_code"]) == ("succeeded", 0)
    statuses = [h["status"] for h in status["history"]]
    assert statuses[0] == "pending" and "running" in statuses and statuses[-1] == "succeeded"


def test_cancel_and_another_users_cancel_is_refused(project: Path, server: Server) -> None:
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    run_id = qwex(
        project, "run", "-d", "-b", "remote", "--", "sh", "-c", "echo up; sleep 300", token=alice
    ).stdout.strip()
    deadline = time.monotonic() + 30
    while qwex(project, "logs", run_id, token=alice).stdout != "up\n":
        assert time.monotonic() < deadline, "the job never printed"
        time.sleep(0.1)
    refused = one_error_line(qwex(project, "cancel", run_id, token=bob))
    assert "submitted by another user" in refused and "only an admin or its submitter" in refused
    assert (
        json.loads(qwex(project, "status", "--json", run_id, token=alice).stdout)["status"]
        == "running"
    )
    cancelled = qwex(project, "cancel", "--wait", run_id, token=alice)
    assert cancelled.returncode == 0 and "cancelled  cancelled by user" in cancelled.stdout
    with server.client("alice") as client:
        job_id = json.loads(qwex(project, "status", "--json", run_id, token=alice).stdout)[
            "backend_data"
        ]["job_id"]
        assert wait_final(client, job_id)["status"] == "cancelled"


@pytest.mark.parametrize("token", [None, "qwex_not-a-token"], ids=["no-token", "wrong-token"])
def test_a_missing_or_wrong_token_is_a_clear_401(project: Path, token: str | None) -> None:
    line = one_error_line(qwex(project, "run", "-b", "remote", "--", "true", token=token))
    assert "failed to start" in line and "QWEX_REMOTE_TOKEN" in line
    assert ("bearer token is required" if token is None else "unknown or revoked") in line
    assert "qwex_not-a-token" not in line


def test_list_shows_every_run_when_the_token_is_refused(project: Path, server: Server) -> None:
    alice = server.tokens["alice"]
    run_id = qwex(
        project, "run", "-d", "--no-trunc", "-b", "remote", "--", "sleep", "300", token=alice
    ).stdout.strip()
    local = qwex(project, "run", "--", "true", token=None)
    assert local.returncode == 0
    listed = qwex(project, "list", "--no-trunc", token="qwex_not-a-token")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.splitlines()[1:]]
    assert [run_id, "pending"] in rows or [run_id, "running"] in rows
    assert len(rows) == 2
    warning = listed.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("qwex: warning: ")
    assert "unknown or revoked" in warning[0] and "shown as last seen" in warning[0]
    assert qwex(project, "cancel", "--wait", run_id, token=alice).returncode == 0


def test_a_mount_of_the_servers_root_is_refused_naming_the_rule(
    project: Path, server: Server
) -> None:
    result = qwex(
        project, "run", "-b", "remote", "-v", "/:/host", "--", "true", token=server.tokens["alice"]
    )
    line = one_error_line(result)
    assert "refused by the server policy (server.mounts)" in line and "'/'" in line


def test_no_base_url_names_the_key_and_the_file(tmp_path: Path) -> None:
    project = tmp_path / "laptop"
    project.mkdir()
    (project / "qwex.toml").write_text("")
    line = one_error_line(qwex(project, "run", "-b", "remote", "--", "true", token="x"))
    assert "remote.base_url" in line and f"[remote] in {project / 'qwex.toml'}" in line
    assert "QWEX_REMOTE_BASE_URL" in line


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    project = laptop(tmp_path, "http://127.0.0.1:9")
    line = one_error_line(qwex(project, "run", "-b", "remote", "--", "true", token="x"))
    assert "127.0.0.1:9" in line and "qwex serve" in line


class FutureServer(http.server.BaseHTTPRequestHandler):
    """A server of a later API version: its health check says so."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "server_version": "9.0.0", "api_version": "2"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_api_version_mismatch_says_what_to_upgrade(tmp_path: Path) -> None:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FutureServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        project = laptop(tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}")
        line = one_error_line(qwex(project, "run", "-b", "remote", "--", "true", token="x"))
    finally:
        httpd.shutdown()
    assert "this client speaks 1" in line and "speaks 2" in line
    assert "upgrade qwex-remote here" in line


def test_logs_and_status_outlive_the_server(tmp_path: Path) -> None:
    server = make_server(tmp_path / "srv")
    alice = server.add_token("alice")
    server.start()
    try:
        project = laptop(tmp_path, f"http://127.0.0.1:{server.port}")
        run = qwex(
            project,
            "run",
            "-b",
            "remote",
            "--",
            "sh",
            "-c",
            "echo kept; echo also >&2",
            token=alice,
        )
        assert run.returncode == 0
        run_id = json.loads(qwex(project, "list", "--json", token=alice).stdout)[0]["id"]
    finally:
        server.stop()
    logs = qwex(project, "logs", run_id, token=alice)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "kept\n", "also\n")
    status = json.loads(qwex(project, "status", "--json", run_id, token=alice).stdout)
    assert (status["status"], status["exit_code"]) == ("succeeded", 0)


@pytest.mark.postgres
def test_a_server_on_postgresql(tmp_path: Path, postgres_db: str) -> None:
    server = make_server(tmp_path / "srv", database_url=postgres_db)
    alice = server.add_token("alice")
    server.start()
    try:
        project = laptop(tmp_path, f"http://127.0.0.1:{server.port}")
        run = qwex(
            project, "run", "-b", "remote", "--", "sh", "-c", "echo on postgres", token=alice
        )
        assert (run.returncode, run.stdout) == (0, "on postgres\n")
    finally:
        server.stop()


@pytest.mark.docker
def test_a_server_restart_in_the_middle_of_a_docker_run(tmp_path: Path, docker_ready: None) -> None:
    """The server stops while `qwex run` follows a Docker job: the container goes on, the
    restarted server re-attaches it, and the CLI's follower reconnects from where it was."""
    server = make_server(tmp_path / "srv", config=DOCKER_CONFIG)
    alice = server.add_token("alice")
    server.start()
    project = laptop(tmp_path, f"http://127.0.0.1:{server.port}")
    command = gate_command("/workspace/go", "one", "two")  # runs until the test releases it
    proc = subprocess.Popen(
        [QWEX, "run", "-b", "remote", "--image", "qwex-test/busybox", "--", *command],
        cwd=project,
        env={**clean_env(project), "QWEX_REMOTE_TOKEN": alice},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "one\n"
        [job_dir] = (server.data_dir / "jobs").iterdir()
        server.stop()
        server.start()
        # The job outlived the server and was taken back running; the CLI still follows it.
        wait_logged(server, f"job {job_dir.name}: re-attached")
        with server.client("alice") as api:
            assert api.get(f"/jobs/{job_dir.name}").json()["status"] == "running"
        assert proc.poll() is None, "qwex run gave up while the server was down"
        (job_dir / "go").touch()
        out, err = proc.communicate(timeout=90)
    finally:
        for folder in (server.data_dir / "jobs").iterdir():  # on a failure too: the job ends
            (folder / "go").touch()
        if proc.poll() is None:
            proc.kill()
        server.stop()
    assert (proc.returncode, out) == (0, "two\n"), err
    assert "Traceback" not in err


def test_ctrl_c_cancels_the_job_on_the_server(project: Path, server: Server) -> None:
    """Ctrl-C asks the server to cancel; `qwex run` exits 130, as a local run does (the
    server can only stop the job with SIGTERM)."""
    proc = subprocess.Popen(
        [QWEX, "run", "-b", "remote", "--", "sh", "-c", "echo up; sleep 300"],
        cwd=project,
        env={**clean_env(project), "QWEX_REMOTE_TOKEN": server.tokens["alice"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "cancelling run" in err and "Traceback" not in err
    listed = json.loads(qwex(project, "list", "--json", token=server.tokens["alice"]).stdout)
    assert (listed[0]["status"], listed[0]["reason"]) == ("cancelled", "cancelled by user")
    with server.client("alice") as client:
        # The server's database follows its run within a worker tick: the CLI may be first.
        job = wait_final(client, listed[0]["backend_data"]["job_id"])
    assert job["status"] == "cancelled"


def test_two_followers_copy_each_line_once(project: Path, server: Server) -> None:
    alice = server.tokens["alice"]
    script = "for i in $(seq 1 40); do echo line $i; sleep 0.05; done"
    started = qwex(
        project, "run", "-d", "--no-trunc", "-b", "remote", "--", "sh", "-c", script, token=alice
    )
    run_id = started.stdout.strip()
    env = {**clean_env(project), "QWEX_REMOTE_TOKEN": alice}
    followers = [
        subprocess.Popen(
            [QWEX, "logs", "-f", run_id], cwd=project, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    expected = "".join(f"line {i}\n" for i in range(1, 41))
    assert [p.communicate(timeout=60)[0] for p in followers] == [expected, expected]
    assert (project / ".qwex" / "runs" / run_id / "stdout.log").read_text() == expected


def test_a_job_the_server_forgot(tmp_path: Path) -> None:
    """The server is replaced by one with an empty database: a run it does not know ends
    `lost` here, saying why, with the output copied before."""
    first = make_server(tmp_path / "first")
    first.add_token("alice")
    first.start()
    project = laptop(tmp_path, f"http://127.0.0.1:{first.port}")
    token = first.tokens["alice"]
    try:
        started = qwex(
            project, "run", "-d", "-b", "remote", "--", "sh", "-c", "echo hi; sleep 60", token=token
        )
        run_id = started.stdout.strip()
        deadline = time.monotonic() + 30
        while qwex(project, "logs", run_id, token=token).stdout != "hi\n":
            assert time.monotonic() < deadline, "the job never printed"
            time.sleep(0.1)
    finally:
        first.stop()
        for run_dir in (first.data_dir / "jobs").glob("*/.qwex/runs/*"):
            with contextlib.suppress(OSError):  # the server leaves its jobs going: stop them
                os.killpg(int((run_dir / "agent.pid").read_text().split()[0]), signal.SIGKILL)
                os.killpg(json.loads((run_dir / "run.json").read_text())["pid"], signal.SIGKILL)
    second = make_server(tmp_path / "second")
    second.port = first.port
    token = second.add_token("alice")
    second.start()
    try:
        lost = json.loads(qwex(project, "status", "--json", run_id, token=token).stdout)
        assert lost["status"] == "lost", lost
        assert (
            f"the server at http://127.0.0.1:{first.port} no longer knows its job" in lost["reason"]
        )
        assert qwex(project, "logs", run_id, token=token).stdout == "hi\n"
    finally:
        second.stop()


def test_a_token_file_and_the_token_is_never_shown(project: Path, server: Server) -> None:
    secret = server.tokens["alice"]
    token_file = project.parent / "token"
    token_file.write_text(secret + "\n")
    with (project / "qwex.toml").open("a") as fh:
        fh.write(f'token_file = "{token_file}"\n')
    run = qwex(project, "run", "-b", "remote", "--", "echo", "via file", token=None)
    assert (run.returncode, run.stdout) == (0, "via file\n"), run.stderr
    (project / "qwex.toml").write_text(
        f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\ntoken = "{secret}"\n'
    )
    shown = qwex(project, "config", "--json", token=None)
    assert shown.returncode == 0 and secret not in shown.stdout + shown.stderr
    status = qwex(project, "status", "--json", run.stderr.split()[2], token=None)
    assert (
        secret not in status.stdout
        and secret
        not in (project / ".qwex")
        .joinpath("runs", json.loads(status.stdout)["id"], "run.json")
        .read_text()
    )


def test_a_server_side_profile_is_asked_for(project: Path, server: Server) -> None:
    alice = server.tokens["alice"]
    run = qwex(
        project,
        "run",
        "-b",
        "remote",
        "--",
        "sh",
        "-c",
        "echo $SIZE",
        token=alice,
        QWEX_REMOTE_PROFILE="small",
    )
    assert (run.returncode, run.stdout) == (0, "small\n"), run.stderr
    refused = qwex(
        project, "run", "-b", "remote", "--", "true", token=alice, QWEX_REMOTE_PROFILE="huge"
    )
    assert "refused by the server policy (server.profiles)" in one_error_line(refused)


def test_listing_many_live_remote_runs_costs_one_page_of_jobs(
    project: Path, server: Server
) -> None:
    """`qwex list` brings every live remote run up to date from one `GET /jobs`, not one
    request (and a log read) per run: its requests do not grow with the live runs."""
    token = server.tokens["alice"]
    ids: list[str] = []

    def status(run_id: str) -> str:
        shown = qwex(project, "status", run_id, "--json", token=token)
        assert shown.returncode == 0, shown.stderr
        return str(json.loads(shown.stdout)["status"])

    def start(count: int) -> None:
        for _ in range(count):
            result = qwex(
                project,
                "run",
                "-d",
                "--no-trunc",
                "-b",
                "remote",
                "--",
                "sleep",
                "120",
                token=token,
            )
            assert result.returncode == 0, result.stderr
            ids.append(result.stdout.strip())
        for run_id in ids:
            deadline = time.monotonic() + 60
            while status(run_id) != "running":
                assert time.monotonic() < deadline, f"{run_id} never ran"
                time.sleep(0.2)

    def requests() -> list[str]:
        result = qwex(project, "list", "--json", token=token, QWEX_REMOTE_TRACE="1")
        assert {r["id"] for r in json.loads(result.stdout)} >= set(ids)
        return [line for line in result.stderr.splitlines() if line.startswith("qwex-remote: ")]

    try:
        start(2)  # the server runs 4 at once: all of them live
        two = requests()
        start(2)
        four = requests()
        assert len(four) == len(two) <= 2, "\n".join(four)
    finally:
        for run_id in ids:
            qwex(project, "cancel", run_id, token=token)


def _detached(project: Path, token: str, *command: str) -> str:
    result = qwex(project, "run", "-d", "--no-trunc", "-b", "remote", "--", *command, token=token)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _traced(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("qwex-remote: ")]


def test_status_of_several_live_remote_runs_costs_one_page_of_jobs(
    project: Path, server: Server
) -> None:
    """`qwex status A B ...` brings its live runs up to date from one `GET /jobs`, as `qwex
    list` does: its requests do not grow with the number of runs asked for."""
    token = server.tokens["alice"]
    ids = [_detached(project, token, "sleep", "120") for _ in range(4)]
    try:

        def status(*run_ids: str) -> tuple[list[dict[str, object]], list[str]]:
            result = qwex(project, "status", "--json", *run_ids, token=token, QWEX_REMOTE_TRACE="1")
            shown = json.loads(result.stdout)
            return shown, _traced(result)

        two, two_requests = status(*ids[:2])
        four, four_requests = status(*ids)
        assert [r["id"] for r in two] == ids[:2] and [r["id"] for r in four] == ids
        assert {r["status"] for r in four} <= {"pending", "queued", "running"}, four
        assert len(four_requests) == len(two_requests) <= 2, "\n".join(four_requests)
        plain = qwex(project, "status", *ids[:2], token=token)
        assert plain.returncode == 0, plain.stderr
        blocks = plain.stdout.split("\n\n")
        assert [b.splitlines()[0].split()[-1] for b in blocks] == ids[:2], plain.stdout
    finally:
        for run_id in ids:
            qwex(project, "cancel", run_id, token=token)


def test_waiting_for_many_remote_runs_asks_for_each_only_at_its_end(
    project: Path, server: Server
) -> None:
    """`qwex wait` of several runs looks at them together, one `GET /jobs` a round, not
    following each in turn (a follow stream and a look every half second per run): what
    it asks of one job does not grow with how long it waits, and it prints each exit code
    in the order asked."""
    token = server.tokens["alice"]
    ids = [
        _detached(project, token, "sh", "-c", f"sleep {s}; exit {c}")
        for s, c in [(6, 3), (4, 0), (5, 0)]
    ]
    result = qwex(project, "wait", *ids, token=token, timeout=120, QWEX_REMOTE_TRACE="1")
    assert (result.returncode, result.stdout) == (3, "3\n0\n0\n"), result.stderr
    requests = [line for line in result.stderr.splitlines() if line.startswith("qwex-remote: ")]
    for run_id in ids:
        job_id = json.loads(qwex(project, "status", "--json", run_id, token=token).stdout)[
            "backend_data"
        ]["job_id"]
        own = [line for line in requests if f"/jobs/{job_id}" in line]
        assert len(own) <= 6, "\n".join(own)
    listings = [line for line in requests if "/jobs?" in line]
    assert 2 <= len(listings) <= 12, "\n".join(requests)


def test_a_dry_run_shows_the_job_it_would_submit_and_submits_nothing(
    project: Path, server: Server
) -> None:
    """Not the local agent's command line (which runs nowhere): the server and the body of
    `POST /jobs`, with the snapshot named by its sha256; no job reaches the server."""
    alice = server.tokens["alice"]
    (project / "train.py").write_text("print('hi')\n")
    before = qwex(project, "list", "-q", token=alice).stdout
    jobs_before = server_jobs(server, "alice")
    result = qwex(
        project, "run", "-b", "remote", "--dry-run", "-e", "SEED=3", "--",
        "python", "train.py", "--lr", "0.1", token=alice,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["server"] == f"http://127.0.0.1:{server.port}"
    body = shown["body"]
    assert body["command"] == ["python", "train.py", "--lr", "0.1"]
    assert body["env"] == {"SEED": "3"}
    assert len(body["snapshot"]) == 64
    assert "qwex_core.agent" not in result.stdout
    assert qwex(project, "list", "-q", token=alice).stdout == before
    assert server_jobs(server, "alice") == jobs_before


def server_jobs(server: Server, who: str) -> list[str]:
    """The ids of every job the server shows `who`, page after page."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": 500}
    with server.client(who) as client:
        while True:
            page = client.get("/jobs", params=params).json()
            ids += [job["id"] for job in page["items"]]
            if page["next_cursor"] is None:
                return sorted(ids)
            params["cursor"] = page["next_cursor"]
