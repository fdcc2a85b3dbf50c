"""Server-side secrets end to end: an admin adds one with the CLI, a job asks for it by name,
gets its value in its environment, and the value is nowhere else: not in any response, the
server's log, the database file, the job's folder, nor the client's run record."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_support import Server, make_server, qwex_cli, submit, wait_final, wait_status

VALUE = "s3cr3t-" + secrets.token_hex(16)
DIGEST = hashlib.sha256(VALUE.encode()).hexdigest()
PRINT_HASH = ["sh", "-c", 'printf %s "$API_KEY" | sha256sum | cut -c1-64']


def add_secret(srv: Server, name: str, value: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **srv.env}
    env = {k: v for k, v in env.items() if not k.startswith("QWEX_")}
    env["XDG_CONFIG_HOME"] = str(srv.project.parent / "xdg")
    from server_support import QWEX

    return subprocess.run(
        [QWEX, "serve", "secret", "add", name, *extra, *srv.db_args()],
        cwd=srv.project,
        input=value,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("secrets"))
    srv.add_token("alice")
    added = add_secret(srv, "api-key", VALUE + "\n")
    assert added.returncode == 0, added.stderr
    assert VALUE not in added.stdout + added.stderr
    srv.start()
    yield srv
    srv.stop()


def everything_readable(srv: Server, client: httpx.Client, job_id: str) -> str:
    """Every answer a token holder can get about the job, and the server's own files."""
    parts = [
        client.get("/jobs").text,
        client.get(f"/jobs/{job_id}").text,
        client.get(f"/jobs/{job_id}/logs", params={"stream": "stderr"}).text,
        client.get(f"/jobs/{job_id}/logs/follow").text,
        httpx.get(
            f"http://127.0.0.1:{srv.port}/openapi.json", headers=client.headers, timeout=30
        ).text,
        srv.log_path.read_text(errors="replace"),
        srv.cli("serve", "secret", "list", "--json", *srv.db_args()).stdout,
        srv.cli("serve", "secret", "list", *srv.db_args()).stdout,
    ]
    return "\n".join(parts)


def files_holding(root: Path, needle: bytes) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
            found.append(str(path))
    return found


def test_a_job_gets_the_secret_and_nothing_shows_it(server: Server) -> None:
    with server.client("alice") as client:
        job = submit(client, "secret-1", PRINT_HASH, secrets={"API_KEY": "api-key"})
        assert job["spec"]["secrets"] == {"API_KEY": "api-key"}
        final = wait_final(client, job["id"])
        assert final["status"] == "succeeded", final
        out = client.get(f"/jobs/{job['id']}/logs").json()["data"]
        assert out.strip() == DIGEST  # the job had the value (one trailing newline dropped)
        shown = everything_readable(server, client, job["id"])
    assert VALUE not in shown
    assert files_holding(server.data_dir, VALUE.encode()) == []  # db, WAL, job folder, logs
    key = server.data_dir / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_an_unknown_secret_is_refused_naming_it(server: Server) -> None:
    with server.client("alice") as client:
        response = client.post(
            "/jobs",
            json={"submission_id": "secret-2", "command": ["true"], "secrets": {"X": "nope"}},
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "secret_not_found"
    assert "'nope'" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["A=B", "", "X\x00Y"])
def test_a_bad_env_name_is_refused_at_submission(server: Server, name: str) -> None:
    with server.client("alice") as client:
        for field in ("env", "secrets"):
            response = client.post(
                "/jobs",
                json={"submission_id": "bad-env", "command": ["true"], field: {name: "api-key"}},
            )
            assert response.status_code == 422, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert repr(name) in error["message"] and "environment variable" in error["message"]


def test_a_variable_in_env_and_secrets_is_refused(server: Server) -> None:
    with server.client("alice") as client:
        response = client.post(
            "/jobs",
            json={
                "submission_id": "both",
                "command": ["true"],
                "env": {"API_KEY": "x"},
                "secrets": {"API_KEY": "api-key"},
            },
        )
    assert response.status_code == 422
    assert "API_KEY is in both env and secrets" in response.json()["error"]["message"]


def test_qwex_run_remote_secret(server: Server, tmp_path: Path) -> None:
    """`qwex run -b remote --secret NAME=ENVVAR`: the command sees it; the user's own run
    record names the secret's name at most."""
    project = tmp_path / "laptop"
    project.mkdir()
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\n')
    env = {"QWEX_REMOTE_TOKEN": server.tokens["alice"]}
    result = qwex_cli(
        "run", "-b", "remote", "--secret", "api-key=API_KEY", "--", *PRINT_HASH,
        cwd=project, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == DIGEST
    assert files_holding(project, VALUE.encode()) == []
    unknown = qwex_cli(
        "run", "-b", "remote", "--secret", "nope", "--", "true", cwd=project, env=env
    )
    assert unknown.returncode == 1
    assert "qwex: error:" in unknown.stderr and "'nope'" in unknown.stderr
    local = qwex_cli("run", "--secret", "api-key", "--", "true", cwd=project, env=env)
    assert local.returncode == 2 and "--backend remote" in local.stderr


def test_secret_commands(server: Server) -> None:
    listed = json.loads(server.cli("serve", "secret", "list", "--json", *server.db_args()).stdout)
    assert [row["name"] for row in listed] == ["api-key"]
    assert set(listed[0]) == {"name", "created_at", "updated_at"}
    again = add_secret(server, "api-key", "other")
    assert again.returncode == 1
    assert again.stderr.startswith("qwex: error: ") and "--replace" in again.stderr
    for bad in ("", "a\x00b"):
        refused = add_secret(server, "empty", bad)
        assert refused.returncode == 1 and refused.stderr.startswith("qwex: error: ")
    assert add_secret(server, "temp", "x").returncode == 0
    removed = server.cli("serve", "secret", "rm", "temp", *server.db_args())
    assert removed.returncode == 0, removed.stderr
    gone = server.cli("serve", "secret", "rm", "temp", *server.db_args())
    assert gone.returncode == 1 and gone.stderr.startswith("qwex: error: no secret named 'temp'")


def test_a_secret_from_a_file(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "value"
    path.write_text(VALUE)
    added = add_secret(server, "from-file", "", "--from-file", str(path))
    assert added.returncode == 0, added.stderr
    with server.client("alice") as client:
        job = submit(client, "secret-file", PRINT_HASH, secrets={"API_KEY": "from-file"})
        assert wait_final(client, job["id"])["status"] == "succeeded"
        assert client.get(f"/jobs/{job['id']}/logs").json()["data"].strip() == DIGEST


def test_token_commands_fail_in_the_qwex_form(server: Server) -> None:
    revoked = server.cli("serve", "token", "revoke", "nobody", *server.db_args())
    assert revoked.returncode == 1
    assert revoked.stderr.strip() == (
        "qwex: error: no token named 'nobody' that is not revoked already"
    )
    taken = server.cli("serve", "token", "add", "alice", *server.db_args())
    assert taken.returncode == 1 and taken.stderr.startswith("qwex: error: a token named")


def test_the_secrets_table_on_postgresql(postgres_db: str, tmp_path: Path) -> None:
    """The store's secret operations on PostgreSQL (the server above runs on SQLite)."""
    from qwex_remote.server import secrets as vault
    from qwex_remote.server.db import open_database
    from qwex_remote.server.store import ServerStore

    store = ServerStore(open_database(postgres_db))
    fernet = vault.load_key(tmp_path, create=True)
    assert store.put_secret("k", vault.encrypt(fernet, VALUE), replace=False) is False
    with pytest.raises(ValueError, match="--replace"):
        store.put_secret("k", vault.encrypt(fernet, "x"), replace=False)
    assert store.put_secret("k", vault.encrypt(fernet, VALUE), replace=True) is True
    assert [name for name, _, _ in store.list_secrets()] == ["k"]
    assert store.secret_names({"k", "other"}) == {"k"}
    assert vault.resolve(store, tmp_path, {"API_KEY": "k"}) == {"API_KEY": VALUE}
    assert store.remove_secret("k") and not store.remove_secret("k")
    with pytest.raises(Exception, match="'k' no longer exists"):
        vault.resolve(store, tmp_path, {"API_KEY": "k"})


@pytest.mark.docker
def test_a_docker_job_gets_the_secret_and_docker_inspect_shows_none(
    server: Server, docker_ready: None
) -> None:
    """The server's worker on its Docker backend: the container's config holds no value."""
    from qwex_docker.client import connect

    api = connect(None, 30)
    command = [*PRINT_HASH[:2], PRINT_HASH[2] + "; sleep 2"]
    with server.client("alice") as client:
        job = submit(
            client,
            "secret-docker",
            command,
            backend="docker",
            image="qwex-test/busybox",
            secrets={"API_KEY": "api-key"},
        )
        wait_status(client, job["id"], "running")
        job_dir = server.data_dir / "jobs" / job["id"]
        found = api.containers(filters={"label": f"qwex.project={job_dir}"})
        assert len(found) == 1
        assert VALUE not in json.dumps(api.inspect_container(found[0]["Id"]))
        final = wait_final(client, job["id"])
        assert final["status"] == "succeeded", final
        assert client.get(f"/jobs/{job['id']}/logs").json()["data"].strip() == DIGEST
        shown = everything_readable(server, client, job["id"])
    assert VALUE not in shown
    assert files_holding(server.data_dir, VALUE.encode()) == []
