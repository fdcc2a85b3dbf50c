"""Mount sources are judged by where they lead, at submit and again when the job starts.

A real `qwex serve` with `mounts = [SHARED]`, real folders and links under a temp dir, the
real Docker daemon for the binds. A link inside an allowed folder to a place outside it is
refused at submit; one planted after the submit (while the job waits for the only slot)
makes the job fail when it starts, before anything is mounted.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import CONFIG, Server, make_server, submit, wait_final, wait_status

SECRET = "the-host-secret-4711"
DOCKER = {"backend": "docker", "image": "qwex-test/busybox"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """`shared/` (allowed, with `data/file`), `outside/secret` (not allowed)."""
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "file").write_text("shared data\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text(SECRET + "\n")
    return tmp_path


def serve(tree: Path, extra: str = "") -> Server:
    config = CONFIG.replace("[server]\n", f'[server]\nmounts = ["{tree / "shared"}"]\n{extra}')
    srv = make_server(tree / "srv", config=config)
    srv.add_token("alice")
    return srv.start()


@pytest.fixture
def server(tree: Path) -> Iterator[Server]:
    srv = serve(tree)
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)


def test_a_link_out_of_an_allowed_folder_is_refused_at_submit(tree: Path, server: Server) -> None:
    (tree / "shared" / "escape").symlink_to("/")
    (tree / "shared" / "sideways").symlink_to(tree / "outside")
    with server.client("alice") as alice:
        for source in ("escape", "sideways", "sideways/secret", "data/../sideways"):
            body = {"submission_id": f"m-{source.replace('/', '_')}", "command": ["true"]}
            mount = {"source": str(tree / "shared" / source), "target": "/host"}
            response = alice.post("/jobs", json={**body, **DOCKER, "mounts": [mount]})
            assert response.status_code == 403, (source, response.text)
            error = response.json()["error"]
            assert error["code"] == "policy_refused"
            assert "server.mounts" in error["message"], error
        plain = {"source": str(tree / "shared" / "data"), "target": "/data"}
        submit(alice, "m-plain", ["true"], **DOCKER, mounts=[plain])


@pytest.mark.docker
def test_a_link_inside_the_allowed_folder_is_mounted_where_it_leads(
    tree: Path, server: Server, docker_ready: None
) -> None:
    (tree / "shared" / "alias").symlink_to(tree / "shared" / "data")
    mount = {"source": str(tree / "shared" / "alias"), "target": "/data", "read_only": True}
    with server.client("alice") as alice:
        job = submit(alice, "alias-1", ["cat", "/data/file"], **DOCKER, mounts=[mount])
        done = wait_final(alice, job["id"], timeout=90)
        assert (done["status"], done["exit_code"]) == ("succeeded", 0), done
        assert alice.get(f"/jobs/{job['id']}/logs").json()["data"] == "shared data\n"


@pytest.mark.docker
def test_a_link_planted_after_the_submit_fails_the_job_at_start(
    tree: Path, docker_ready: None
) -> None:
    srv = serve(tree, "concurrency = 1\n")
    try:
        with srv.client("alice") as alice:
            blocker = submit(alice, "block-1", ["sleep", "60"])  # the only slot
            wait_status(alice, blocker["id"], "running")
            mount = {"source": str(tree / "shared" / "data"), "target": "/data"}
            job = submit(alice, "late-1", ["cat", "/data/secret"], **DOCKER, mounts=[mount])
            # What a job with a writable allowed mount could do to a later one:
            (tree / "shared" / "data" / "file").unlink()
            (tree / "shared" / "data").rmdir()
            (tree / "shared" / "data").symlink_to(tree / "outside")
            alice.post(f"/jobs/{blocker['id']}/cancel")
            done = wait_final(alice, job["id"], timeout=90)
            assert done["status"] == "failed", done
            assert "server.mounts" in (done["reason"] or ""), done
            assert str(tree / "outside") in (done["reason"] or ""), done
            logs = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
            assert SECRET not in logs
    finally:
        assert srv.stop() in (0, -signal.SIGTERM)
