"""The REST API of a real `qwex serve` on loopback (one server for the module), through httpx."""

from __future__ import annotations

import base64
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import Server, make_server, submit, wait_final, wait_status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server"))
    for name, role in (("alice", "user"), ("bob", "user"), ("carol", "user"), ("root", "admin")):
        srv.add_token(name, role)
    srv.start()
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    log = srv.log_path.read_text()
    leaked = [name for name, secret in srv.tokens.items() if secret in log]
    assert not leaked, f"the server log shows the secret of {leaked}"


@pytest.fixture
def alice(server: Server) -> Iterator[httpx.Client]:
    with server.client("alice") as client:
        yield client


def error(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    code: str = body["error"]["code"]
    return code


def test_health_needs_no_token_and_names_the_versions(server: Server) -> None:
    with server.client() as anonymous:
        health = anonymous.get("/health").json()
    assert health == {"status": "ok", "server_version": "0.1.0", "api_version": "1"}


@pytest.mark.parametrize("token", [None, "qwex_not-a-real-token"])
def test_every_other_route_needs_a_valid_token(server: Server, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for method, path in [
            ("GET", "/jobs"),
            ("POST", "/jobs"),
            ("GET", "/jobs/x"),
            ("POST", "/jobs/x/cancel"),
            ("GET", "/jobs/x/logs"),
            ("GET", "/jobs/x/logs/follow"),
            ("PUT", "/snapshots/" + "0" * 64),
        ]:
            response = client.request(method, path, json={"submission_id": "s", "command": ["x"]})
            assert response.status_code == 401, (method, path, response.text)
            assert error(response) == "unauthorized"


def test_a_job_runs_and_its_logs_read_by_offset(alice: httpx.Client) -> None:
    job = submit(alice, "hello-1", ["sh", "-c", "printf 'héllo\\n'; echo oops >&2; exit 3"])
    assert job["status"] == "pending" and job["submitter"] == "alice"
    done = wait_final(alice, job["id"])
    assert (done["status"], done["exit_code"], done["reason"]) == ("failed", 3, "exit code 3")
    assert done["started_at"] and done["finished_at"]
    whole = alice.get(f"/jobs/{job['id']}/logs").json()
    assert whole == {
        "stream": "stdout",
        "offset": 0,
        "next_offset": 7,
        "data": "héllo\n",
        "data_b64": base64.b64encode("héllo\n".encode()).decode(),
        "final": True,
    }
    part = alice.get(f"/jobs/{job['id']}/logs", params={"offset": 3, "limit": 1}).json()
    assert (part["data"], part["next_offset"]) == ("l", 4)
    # One byte from 1 is half of "é": the byte is carried, its text is U+FFFD.
    cut = alice.get(f"/jobs/{job['id']}/logs", params={"offset": 1, "limit": 1}).json()
    assert (cut["data"], cut["data_b64"], cut["next_offset"], cut["final"]) == (
        "\ufffd",
        base64.b64encode(b"\xc3").decode(),
        2,
        False,
    )
    err = alice.get(f"/jobs/{job['id']}/logs", params={"stream": "stderr"}).json()
    assert err["data"] == "oops\n"


def test_a_job_killed_by_a_signal_names_it(alice: httpx.Client) -> None:
    """The job carries the signal that ended its command, as a run record does: clients
    need not read it out of the reason's words."""
    job = submit(alice, "signal-1", ["sh", "-c", "kill -TERM $$"])
    done = wait_final(alice, job["id"])
    assert (done["status"], done["exit_code"], done["signal"]) == ("failed", 143, "SIGTERM")
    plain = wait_final(alice, submit(alice, "signal-2", ["true"])["id"])
    assert (plain["exit_code"], plain["signal"]) == (0, None)


def test_a_retried_submit_is_the_same_job_and_another_spec_is_a_conflict(
    server: Server, alice: httpx.Client
) -> None:
    body = {"submission_id": "retry-1", "command": ["true"]}
    first = alice.post("/jobs", json=body)
    again = alice.post("/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    conflict = alice.post("/jobs", json={**body, "command": ["false"]})
    assert conflict.status_code == 409 and error(conflict) == "submission_conflict"
    assert first.json()["id"] in conflict.json()["error"]["message"]
    with server.client("bob") as bob:  # submission ids are per submitter
        theirs = bob.post("/jobs", json=body)
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


def test_list_is_newest_first_in_pages_with_filters(server: Server) -> None:
    with server.client("carol") as carol:
        ids = [submit(carol, f"page-{i}", ["true"])["id"] for i in range(5)]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"submitter": "carol", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = carol.get("/jobs", params=params).json()
            seen += [j["id"] for j in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1] and pages == 3
        for job_id in ids:
            wait_final(carol, job_id)
        done = carol.get("/jobs", params={"submitter": "carol", "status": "succeeded"}).json()
        assert {j["id"] for j in done["items"]} == set(ids)
        none = carol.get("/jobs", params={"submitter": "carol", "status": "running"}).json()
        assert none["items"] == []
        assert (
            carol.get("/jobs", params={"backend": "docker", "submitter": "carol"}).json()["items"]
            == []
        )
        bad = carol.get("/jobs", params={"limit": 0})
        assert bad.status_code == 422 and error(bad) == "invalid_request"


def test_a_listed_job_reads_as_the_job_itself(alice: httpx.Client) -> None:
    """The list reads its rows its own (faster) way: the same job, byte for byte."""
    job = submit(alice, "same-1", ["true"], labels={"k": "v"})
    done = wait_final(alice, job["id"])
    listed = alice.get("/jobs", params={"submitter": "alice", "limit": 1}).json()["items"]
    assert listed == [done] and done["finished_at"].endswith("Z")


def test_a_user_cancels_their_own_job_only_and_an_admin_any(
    server: Server, alice: httpx.Client
) -> None:
    job = submit(alice, "long-1", ["sleep", "60"])
    wait_status(alice, job["id"], "running")
    with server.client("bob") as bob:
        refused = bob.post(f"/jobs/{job['id']}/cancel")
        assert refused.status_code == 403 and error(refused) == "forbidden"
        theirs = submit(bob, "long-2", ["sleep", "60"])
    asked = alice.post(f"/jobs/{job['id']}/cancel")
    assert asked.status_code == 200 and asked.json()["cancel_requested"]
    done = wait_final(alice, job["id"])
    assert (done["status"], done["reason"]) == ("cancelled", "cancelled by alice")
    with server.client("root") as admin:
        assert admin.post(f"/jobs/{theirs['id']}/cancel").status_code == 200
        assert wait_final(admin, theirs["id"])["reason"] == "cancelled by root"
    missing = alice.post("/jobs/no-such-job/cancel")
    assert missing.status_code == 404 and error(missing) == "not_found"


def sse(response: httpx.Response) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(event, id, data) of a Server-Sent Events stream."""
    kind, event_id, data = "message", None, ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data += line[6:]
        elif line == "" and data:
            yield kind, event_id, json.loads(data)
            kind, event_id, data = "message", None, ""


def test_follow_streams_a_line_while_the_job_runs_then_resumes(alice: httpx.Client) -> None:
    job = submit(alice, "follow-1", ["sh", "-c", "echo first; sleep 60"])
    path = f"/jobs/{job['id']}/logs/follow"
    with alice.stream("GET", path) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response)
        kind, event_id, data = next(events)
        assert (kind, data["data"], event_id) == ("log", "first\n", "6,0")
        wait_status(alice, job["id"], "running")  # the database follows the run within a tick
        alice.post(f"/jobs/{job['id']}/cancel")
        rest = list(events)
    assert rest[-1][0] == "end" and rest[-1][2]["status"] == "cancelled"
    # Resuming from the last id sends nothing twice: only the end.
    with alice.stream("GET", path, headers={"Last-Event-ID": "6,0"}) as response:
        again = list(sse(response))
    assert [k for k, _, _ in again] == ["end"]
    with alice.stream("GET", path, params={"stdout_offset": 2}) as response:
        tail = list(sse(response))
    assert tail[0][2]["data"] == "rst\n" and tail[0][2]["offset"] == 2


def test_offsets_past_the_end_read_nothing_instead_of_failing(alice: httpx.Client) -> None:
    """Offsets beyond any file (past 2**63 too) are a client's mistake, not a 500."""
    job = submit(alice, "far-1", ["echo", "hi"])
    wait_final(alice, job["id"])
    far = str(10**30)
    chunk = alice.get(f"/jobs/{job['id']}/logs", params={"offset": far})
    assert chunk.status_code == 200 and chunk.json()["data"] == "", chunk.text
    path = f"/jobs/{job['id']}/logs/follow"
    with alice.stream("GET", path, params={"stdout_offset": far}) as response:
        events = list(sse(response))
    assert [kind for kind, _, _ in events] == ["end"], events


def test_a_quiet_stream_gets_keepalives_and_no_line_twice(alice: httpx.Client) -> None:
    job = submit(alice, "quiet-1", ["sh", "-c", "printf 'a\\nb'; sleep 1.2; printf 'c\\n'"])
    with alice.stream("GET", f"/jobs/{job['id']}/logs/follow") as response:
        lines = list(response.iter_lines())
    assert ": keepalive" in lines
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert "".join(d["data"] for d in data[:-1]) == "a\nbc\n"
    assert data[-1]["status"] == "succeeded"


def test_snapshot_upload_is_verified_idempotent_and_size_limited(
    alice: httpx.Client, tmp_path: Path
) -> None:
    from qwex_core.snapshot import make_snapshot

    project = tmp_path / "code"
    project.mkdir()
    (project / "data.txt").write_text("from the snapshot\n")
    snap = make_snapshot(project, limit=1 << 20)
    url = f"/snapshots/{snap.sha256}"
    assert alice.get(url).status_code == 404
    created = alice.put(url, content=snap.data)
    assert created.status_code == 201 and created.json() == {
        "sha256": snap.sha256,
        "size": len(snap.data),
    }
    assert alice.put(url, content=snap.data).status_code == 200
    assert alice.get(url).json()["size"] == len(snap.data)
    wrong = alice.put("/snapshots/" + "a" * 64, content=snap.data)
    assert wrong.status_code == 400 and error(wrong) == "snapshot_digest_mismatch"
    malformed = alice.put("/snapshots/not-a-digest", content=snap.data)
    assert malformed.status_code == 422 and error(malformed) == "invalid_request"
    big = os.urandom(100_000)
    import hashlib

    too_big = alice.put(f"/snapshots/{hashlib.sha256(big).hexdigest()}", content=big)
    assert too_big.status_code == 413 and error(too_big) == "too_large"
    not_tar = b"not a tar.gz"
    invalid = alice.put(f"/snapshots/{hashlib.sha256(not_tar).hexdigest()}", content=not_tar)
    assert invalid.status_code == 422 and error(invalid) == "snapshot_invalid"
    # The job runs in its own unpacked snapshot.
    job = submit(alice, "snap-1", ["sh", "-c", "cat data.txt; pwd"], snapshot=snap.sha256)
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    out = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
    assert out.startswith("from the snapshot\n") and job["id"] in out
    unknown = alice.post(
        "/jobs", json={"submission_id": "snap-2", "command": ["true"], "snapshot": "b" * 64}
    )
    assert unknown.status_code == 422 and error(unknown) == "snapshot_not_found"


def test_a_job_starts_in_a_folder_of_its_snapshot_and_never_outside_it(
    alice: httpx.Client, tmp_path: Path
) -> None:
    from qwex_core.snapshot import make_snapshot

    project = tmp_path / "code"
    (project / "sub").mkdir(parents=True)
    (project / "sub" / "here.txt").write_text("x")
    (project / "out").symlink_to("/")
    snap = make_snapshot(project, limit=1 << 20)
    alice.put(f"/snapshots/{snap.sha256}", content=snap.data)
    job = submit(alice, "wd-1", ["sh", "-c", "pwd; ls"], snapshot=snap.sha256, workdir="sub")
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    out = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
    assert out.endswith(f"/jobs/{job['id']}/sub\nhere.txt\n")
    for bad in ("../sub", "/etc", "sub/../../x"):
        refused = alice.post(
            "/jobs", json={"submission_id": "wd-2", "command": ["pwd"], "workdir": bad}
        )
        assert refused.status_code == 422 and "workdir" in refused.text
    job = submit(alice, "wd-3", ["pwd"], snapshot=snap.sha256, workdir="out")
    final = wait_final(alice, job["id"])
    assert final["status"] == "failed"
    assert final["reason"] == "workdir out is not a folder of the job's snapshot"


@pytest.mark.parametrize(
    ("spec", "rule"),
    [
        (
            {
                "backend": "docker",
                "image": "qwex-test/busybox",
                "mounts": [{"source": "/", "target": "/host"}],
            },
            "server.mounts",
        ),
        ({"backend": "k8s"}, "server.backends"),
        ({"backend": "docker", "image": "evil/image"}, "server.images"),
        ({"backend": "docker", "image": "qwex-test/busybox", "network": "host"}, "server.networks"),
    ],
)
def test_the_policy_refuses_with_a_403_naming_the_rule(
    alice: httpx.Client, spec: dict[str, Any], rule: str
) -> None:
    response = alice.post("/jobs", json={"submission_id": f"p-{rule}", "command": ["id"], **spec})
    assert response.status_code == 403 and error(response) == "policy_refused"
    assert rule in response.json()["error"]["message"]


def test_a_submission_may_name_an_allowed_server_side_profile(alice: httpx.Client) -> None:
    job = submit(alice, "profile-1", ["sh", "-c", "echo $SIZE"], profile="small")
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    assert alice.get(f"/jobs/{job['id']}/logs").json()["data"] == "small\n"
    refused = alice.post(
        "/jobs", json={"submission_id": "profile-2", "command": ["id"], "profile": "big"}
    )
    assert refused.status_code == 403 and "server.profiles" in refused.json()["error"]["message"]


def test_a_revoked_token_gets_401(server: Server) -> None:
    server.add_token("temp", cli=True)
    with server.client("temp") as temp:
        assert temp.get("/jobs", params={"limit": 1}).status_code == 200
        result = server.cli("serve", "token", "revoke", "temp", *server.db_args())
        assert result.returncode == 0, result.stderr
        assert temp.get("/jobs", params={"limit": 1}).status_code == 401


@pytest.mark.docker
def test_a_docker_job_runs_in_its_snapshot_with_nothing_of_the_server_mounted(
    server: Server, alice: httpx.Client, docker_ready: None, tmp_path: Path
) -> None:
    from qwex_core.snapshot import make_snapshot

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "hello.sh").write_text("echo hello from $(pwd)\n")
    snap = make_snapshot(tmp_path / "code", limit=1 << 20)
    alice.put(f"/snapshots/{snap.sha256}", content=snap.data)
    # The server's own places, none of which the container may see.
    server_paths = [server.data_dir, server.project, server.data_dir / "server.db"]
    script = (
        "sh hello.sh; echo ---; ls -A /workspace; echo ---; ls -A /workspace/.qwex/runs; "
        "echo ---; for p in " + " ".join(str(p) for p in server_paths) + "; do "
        'test -e "$p" && echo "visible: $p"; done; echo ---; '
        "awk '$5 == \"/workspace\" {print $4}' /proc/self/mountinfo"
    )
    job = submit(
        alice,
        "docker-1",
        ["sh", "-c", script],
        backend="docker",
        image="qwex-test/busybox",
        snapshot=snap.sha256,
    )
    done = wait_final(alice, job["id"], timeout=120)
    out = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
    assert done["status"] == "succeeded", (done, out)
    hello, workspace, runs, visible, root = (part.split() for part in out.split("---\n"))
    assert hello == ["hello", "from", "/workspace"]
    # /workspace is the snapshot and the job's own run store, nothing else of the server's
    # (no other job, no database, no server configuration): the job's folder and no other.
    assert workspace == [".qwex", "hello.sh"], out
    assert len(runs) == 1, out
    assert visible == [], out
    assert [r.endswith(f"/jobs/{job['id']}") for r in root] == [True], out


@pytest.mark.docker
def test_a_job_that_cannot_start_fails_with_the_backends_reason(
    alice: httpx.Client, docker_ready: None
) -> None:
    job = submit(alice, "noimage-1", ["true"], backend="docker", image="qwex-test/no-such-image")
    done = wait_final(alice, job["id"], timeout=60)
    assert done["status"] == "failed" and "qwex-test/no-such-image" in (done["reason"] or "")
