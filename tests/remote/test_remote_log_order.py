"""Issue 18.3 through a real `qwex serve`: the job's write order (its `output.idx`) reaches
the client's run folder, by the follow stream and by the copy a later look makes, so
`qwex logs` on the laptop replays both streams as the job wrote them."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_support import QWEX, Server, clean_env, submit, team_server, wait_final

REPRODUCER = "echo 1; sleep .1; echo 2 >&2; sleep .1; echo 3; sleep .1; echo 4 >&2"
RECORD = 24


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture
def project(tmp_path: Path, server: Server) -> Path:
    project = tmp_path / "laptop"
    project.mkdir()
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\n')
    return project


def merged(project: Path, server: Server, *args: str) -> bytes:
    """`qwex ARGS` with stdout and stderr on one pipe, without qwex's own lines."""
    env = {**clean_env(project), "QWEX_REMOTE_TOKEN": server.tokens["alice"]}
    shown = subprocess.run(
        [QWEX, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=project,
        env=env,
        timeout=60,
    )
    assert b"Traceback" not in shown.stdout, shown.stdout
    return b"".join(
        line for line in shown.stdout.splitlines(True) if not line.startswith(b"qwex: ")
    )


def run_id(project: Path) -> str:
    (name,) = (project / ".qwex" / "runs").iterdir()
    return name.name


def test_a_followed_job_replays_in_write_order(project: Path, server: Server) -> None:
    live = merged(project, server, "run", "-b", "remote", "--", "sh", "-c", REPRODUCER)
    assert live == b"1\n2\n3\n4\n"
    rid = run_id(project)
    assert merged(project, server, "logs", rid) == b"1\n2\n3\n4\n"
    assert merged(project, server, "logs", "--tail", "3", rid) == b"2\n3\n4\n"
    stamped = merged(project, server, "logs", "-t", rid).decode().splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["1", "2", "3", "4"]
    folder = project / ".qwex" / "runs" / rid
    assert (folder / "stdout.log").read_bytes() == b"1\n3\n"
    assert (folder / "stderr.log").read_bytes() == b"2\n4\n"


def test_a_job_not_followed_is_copied_with_its_order(project: Path, server: Server) -> None:
    merged(project, server, "run", "-d", "-b", "remote", "--", "sh", "-c", REPRODUCER)
    rid = run_id(project)
    with server.client("alice") as alice:
        jobs = alice.get("/jobs", params={"limit": 100}).json()["items"]
        (job,) = [j for j in jobs if j["submission_id"] == rid]
        wait_final(alice, job["id"])
    assert merged(project, server, "logs", rid) == b"1\n2\n3\n4\n"  # copied by this look
    assert merged(project, server, "logs", "--since", "1h", "--tail", "2", rid) == b"3\n4\n"


def test_the_index_is_served_only_to_clients_that_ask(server: Server) -> None:
    """A client from before the index (no `index_offset`) gets only stdout and stderr;
    one that asks gets the index too, and `Last-Event-ID` resumes all three."""
    with server.client("alice") as alice:
        job = submit(alice, "order-api-1", ["sh", "-c", REPRODUCER])
        wait_final(alice, job["id"])

        def events(**params: int) -> list[dict[str, object]]:
            url = f"/jobs/{job['id']}/logs/follow"
            with alice.stream("GET", url, params=params, timeout=60) as response:
                text = "".join(response.iter_text())
            return [
                json.loads(block.split("data: ", 1)[1])
                for block in text.split("\n\n")
                if "event: log" in block
            ]

        old = events()
        assert {e["stream"] for e in old} == {"stdout", "stderr"}
        new = events(index_offset=0)
        index = b"".join(
            base64.b64decode(str(e["data_b64"])) for e in new if e["stream"] == "index"
        )
        assert len(index) == 4 * RECORD
        piece = alice.get(f"/jobs/{job['id']}/logs", params={"stream": "index"}).json()
        assert base64.b64decode(piece["data_b64"]) == index
        resumed = events_after(alice, job["id"], f"2,2,{2 * RECORD}")
        assert [(e["stream"], e["offset"]) for e in resumed] == [
            ("index", 2 * RECORD),
            ("stdout", 2),
            ("stderr", 2),
        ]


def events_after(client: httpx.Client, job_id: str, last_id: str) -> list[dict[str, object]]:
    headers = {"Last-Event-ID": last_id}
    url = f"/jobs/{job_id}/logs/follow"
    with client.stream("GET", url, headers=headers, timeout=60) as response:
        text = "".join(response.iter_text())
    return [
        json.loads(block.split("data: ", 1)[1])
        for block in text.split("\n\n")
        if "event: log" in block
    ]
