"""Roles on a real server: a viewer reads, a user also submits and cancels their own jobs, an
admin cancels anyone's; the spec says which route needs which; the docs routes need a token
like the rest of the API (only /health answers without one)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator

import httpx
import pytest
from server_support import Server, make_server, submit, wait_final, wait_status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("roles"))
    srv.add_token("vera", "viewer", cli=True)
    srv.add_token("alice", "user")
    srv.add_token("bob", "user")
    srv.add_token("root", "admin")
    srv.start()
    yield srv
    srv.stop()


def snapshot() -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("main.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    body = buffer.getvalue()
    return hashlib.sha256(body).hexdigest(), body


def forbidden(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    return str(error["message"])


def test_a_viewer_reads_and_changes_nothing(server: Server) -> None:
    with server.client("alice") as alice, server.client("vera") as vera:
        job = submit(alice, "roles-1", ["sleep", "30"])
        assert vera.get("/jobs").status_code == 200
        assert vera.get(f"/jobs/{job['id']}").json()["id"] == job["id"]
        assert vera.get(f"/jobs/{job['id']}/logs").status_code == 200
        message = forbidden(vera.post("/jobs", json={"submission_id": "v", "command": ["true"]}))
        assert "needs the user role" in message and "'vera' is a viewer" in message
        forbidden(vera.post(f"/jobs/{job['id']}/cancel"))
        sha, body = snapshot()
        forbidden(vera.put(f"/snapshots/{sha}", content=body))
        assert vera.get(f"/snapshots/{sha}").status_code == 404  # nothing was stored
        assert vera.get("/jobs", params={"submitter": "vera"}).json()["items"] == []
        assert alice.post(f"/jobs/{job['id']}/cancel").status_code == 200
        assert wait_final(alice, job["id"])["status"] == "cancelled"


def test_a_user_cancels_their_own_an_admin_any(server: Server) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        job = submit(alice, "roles-2", ["sleep", "30"])
        wait_status(alice, job["id"], "running")
        forbidden(bob.post(f"/jobs/{job['id']}/cancel"))
        sha, body = snapshot()
        assert bob.put(f"/snapshots/{sha}", content=body).status_code == 201
        with server.client("root") as root:
            assert root.post(f"/jobs/{job['id']}/cancel").status_code == 200
        final = wait_final(alice, job["id"])
        assert final["status"] == "cancelled" and final["reason"] == "cancelled by root"


def test_the_spec_names_each_routes_role(server: Server) -> None:
    with server.client("vera") as vera:
        spec = httpx.get(
            f"http://127.0.0.1:{server.port}/openapi.json", headers=vera.headers
        ).json()
    roles = {
        (method.upper(), path.removeprefix("/api/v1")): operation.get("x-qwex-role")
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert roles == {
        ("GET", "/health"): "none",
        ("GET", "/jobs"): "viewer",
        ("GET", "/jobs/{job_id}"): "viewer",
        ("GET", "/jobs/{job_id}/logs"): "viewer",
        ("GET", "/jobs/{job_id}/logs/follow"): "viewer",
        ("GET", "/snapshots/{sha256}"): "viewer",
        ("POST", "/jobs"): "user",
        ("POST", "/jobs/{job_id}/cancel"): "user",
        ("PUT", "/snapshots/{sha256}"): "user",
    }


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_the_docs_need_a_token(server: Server, path: str) -> None:
    root = f"http://127.0.0.1:{server.port}"
    anonymous = httpx.get(root + path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    wrong = httpx.get(root + path, headers={"Authorization": "Bearer qwex_nope"})
    assert wrong.status_code == 401
    with server.client("vera") as vera:
        answer = httpx.get(root + path, headers=vera.headers)
    assert answer.status_code == 200
    assert ("openapi" in answer.json()) if path.endswith(".json") else "<html" in answer.text
    assert httpx.get(f"{server.url}/health").status_code == 200  # the one public route


def test_token_list_shows_the_viewer(server: Server) -> None:
    listed = server.cli("serve", "token", "list", *server.db_args())
    line = next(line for line in listed.stdout.splitlines() if line.startswith("vera "))
    assert " viewer " in line
    bad = server.cli("serve", "token", "add", "x", "--role", "root", *server.db_args())
    assert bad.returncode == 2 and "'viewer', 'user', 'admin'" in bad.stderr
