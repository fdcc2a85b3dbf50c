"""What the server reads from a job's folder, and every byte of it, against a real `qwex serve`.

A job may replace its own log files with links to host files: the server must never
serve the link's target (issue 16, finding 2). A job's output is bytes, not text:
invalid UTF-8 and a multibyte sequence cut at the end reach the client's live output,
its local log and `qwex logs` exactly as the server's file holds them (finding 3).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import QWEX, Server, clean_env, submit, team_server, wait_final, wait_status

STREAMS = ("stdout", "stderr")
SECRET = "the-server-hosts-secret-4f1c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture
def alice(server: Server) -> Iterator[httpx.Client]:
    with server.client("alice") as client:
        yield client


def follow_text(client: httpx.Client, job_id: str) -> str:
    """The whole follow stream of a job, as sent (until its end)."""
    with client.stream("GET", f"/jobs/{job_id}/logs/follow", timeout=60) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


def test_a_job_that_links_its_logs_to_a_host_file_never_gets_that_file_served(
    server: Server, alice: httpx.Client, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    run = '"$PWD/.qwex/runs/$QWEX_RUN_ID"'
    script = (
        f"echo before; ln -sf {secret} {run}/stdout.log; ln -sf {secret} {run}/stderr.log; sleep 2"
    )
    job = submit(alice, "link-1", ["sh", "-c", script])
    wait_status(alice, job["id"], "running")
    runs = server.data_dir / "jobs" / job["id"] / ".qwex" / "runs"
    deadline = time.monotonic() + 60
    while not all(p.is_symlink() for p in runs.glob("*/std*.log")) or not any(runs.glob("*/")):
        assert time.monotonic() < deadline, "the job never replaced its logs by links"
        time.sleep(0.02)  # then looked at while it sleeps on for 2 s
    seen = [alice.get(f"/jobs/{job['id']}/logs", params={"stream": s}).text for s in STREAMS]
    seen.append(follow_text(alice, job["id"]))
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    for stream in ("stdout", "stderr"):  # and once it is final
        seen.append(alice.get(f"/jobs/{job['id']}/logs", params={"stream": stream}).text)
    seen.append(follow_text(alice, job["id"]))
    assert not [s for s in seen if SECRET in s or _b64_has_secret(s)], seen
    assert "event: end" in seen[-1]


def test_a_job_that_replaces_its_run_folder_by_a_link_gets_nothing_from_there(
    alice: httpx.Client, tmp_path: Path
) -> None:
    """No link is followed below the job's folder, a folder's neither: the target here
    holds regular files named as logs (another run's folder, say)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("stdout.log", "stderr.log"):
        (elsewhere / name).write_text(SECRET + "\n")
    run = '"$PWD/.qwex/runs/$QWEX_RUN_ID"'
    script = (
        f"echo before; cp {run}/run.json {elsewhere}/; mv {run} {run}.moved; "
        f"ln -s {elsewhere} {run}; sleep 1"
    )
    job = submit(alice, "dirlink-1", ["sh", "-c", script])
    wait_final(alice, job["id"])
    seen = [alice.get(f"/jobs/{job['id']}/logs", params={"stream": s}).text for s in STREAMS]
    seen.append(follow_text(alice, job["id"]))
    assert not [s for s in seen if SECRET in s or _b64_has_secret(s)], seen


@pytest.mark.docker
def test_a_container_that_links_its_logs_to_a_host_file_never_gets_it_served(
    alice: httpx.Client, docker_ready: None, tmp_path: Path
) -> None:
    """The run folder is bind-mounted writable into the container: a link made there names
    a path of the host, where the server would resolve it."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    script = (
        f"echo before; ln -sf {secret} /qwex-run/stdout.log; "
        f"ln -sf {secret} /qwex-run/stderr.log; sleep 1"
    )
    job = submit(
        alice, "link-docker-1", ["sh", "-c", script], backend="docker", image="qwex-test/busybox"
    )
    done = wait_final(alice, job["id"], timeout=120)
    assert done["status"] == "succeeded", done
    seen = [alice.get(f"/jobs/{job['id']}/logs", params={"stream": s}).text for s in STREAMS]
    seen.append(follow_text(alice, job["id"]))
    assert not [s for s in seen if SECRET in s or _b64_has_secret(s)], seen
    assert "event: end" in seen[-1]


def _b64_has_secret(text: str) -> bool:
    """Whether a JSON body or an SSE stream carries the secret in a base64 field."""
    for line in text.splitlines():
        body = line.removeprefix("data: ")
        try:
            data: Any = json.loads(body)
        except ValueError:
            continue
        exact = data.get("data_b64") if isinstance(data, dict) else None
        if isinstance(exact, str) and SECRET.encode() in base64.b64decode(exact):
            return True
    return False


def test_a_log_replaced_by_a_fifo_is_refused_without_hanging(
    alice: httpx.Client, tmp_path: Path
) -> None:
    """Opening a FIFO for reading would wait for a writer: the server refuses non-files."""
    run = '"$PWD/.qwex/runs/$QWEX_RUN_ID"'
    script = f"echo before; rm {run}/stdout.log; mkfifo {run}/stdout.log"
    job = submit(alice, "fifo-1", ["sh", "-c", script])
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    chunk = alice.get(f"/jobs/{job['id']}/logs", timeout=10).json()
    assert (chunk["data"], chunk["final"]) == ("", True)
    assert "event: end" in follow_text(alice, job["id"])


ODD = b"caf\xc3\xa9 \xff\xfe bad \xed\xa0\x80 surrogate\nend \xe2\x82"
"""Valid UTF-8, two invalid bytes, an encoded surrogate, then a euro sign cut after two
of its three bytes, at the very end of the output."""


def laptop(root: Path, server: Server) -> Path:
    project = root / "laptop"
    project.mkdir(parents=True, exist_ok=True)
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\n')
    return project


def qwex_bytes(project: Path, token: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**clean_env(project), "QWEX_REMOTE_TOKEN": token}
    done = subprocess.run(
        [QWEX, *args], cwd=project, capture_output=True, timeout=60, env=env, check=False
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    return done


def test_invalid_utf8_reaches_the_client_byte_for_byte(server: Server, tmp_path: Path) -> None:
    project = laptop(tmp_path, server)
    token = server.tokens["alice"]
    printf = "".join(f"\\{b:03o}" for b in ODD)
    script = f"printf '{printf}'; printf '{printf}' >&2; sleep 0.3; printf '{printf}'"
    run = qwex_bytes(project, token, "run", "-b", "remote", "--", "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ODD + ODD  # the live output
    assert ODD in run.stderr
    listed = json.loads(qwex_bytes(project, token, "list", "--json").stdout)
    run_id = listed[0]["id"]
    folder = project / ".qwex" / "runs" / run_id
    assert (folder / "stdout.log").read_bytes() == ODD + ODD  # the local copy
    assert (folder / "stderr.log").read_bytes() == ODD
    assert qwex_bytes(project, token, "logs", run_id).stdout == ODD + ODD


def test_the_api_carries_the_exact_bytes(alice: httpx.Client) -> None:
    printf = "".join(f"\\{b:03o}" for b in ODD)
    job = submit(alice, "bytes-1", ["sh", "-c", f"printf '{printf}'"])
    assert wait_final(alice, job["id"])["status"] == "succeeded"
    chunk = alice.get(f"/jobs/{job['id']}/logs").json()
    assert base64.b64decode(chunk["data_b64"]) == ODD
    assert (chunk["next_offset"], chunk["final"]) == (len(ODD), True)
    # A page boundary inside a character splits it: the bytes are still all there.
    pieces, offset = b"", 0
    while True:
        part = alice.get(f"/jobs/{job['id']}/logs", params={"offset": offset, "limit": 3}).json()
        pieces += base64.b64decode(part["data_b64"])
        offset = part["next_offset"]
        if part["final"]:
            break
    assert pieces == ODD
    streamed = b""
    for line in follow_text(alice, job["id"]).splitlines():
        if line.startswith("data: ") and "data_b64" in line:
            streamed += base64.b64decode(json.loads(line[6:])["data_b64"])
    assert streamed == ODD


def test_the_server_writes_no_record_through_a_link_the_job_planted(
    server: Server, alice: httpx.Client, tmp_path: Path
) -> None:
    """The server writes a run's record through a temporary file named by its own pid in
    the run folder, which the job can write: a link planted there must not be followed
    (it would overwrite any file of the server's user). The job plants one, then kills
    its agent, so that the server records the end (`lost`) itself."""
    assert server.proc is not None
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = '"$PWD/.qwex/runs/$QWEX_RUN_ID"'
    script = (
        f"ln -s {victim} {run}/.run.json.{server.proc.pid}.tmp; "
        f"read pid started < {run}/agent.pid; kill -9 $pid; sleep 1"
    )
    job = submit(alice, "plant-1", ["sh", "-c", script])
    assert wait_final(alice, job["id"])["status"] in ("lost", "failed")
    assert victim.read_text() == "precious\n"


def test_a_large_binary_output_is_copied_exactly(server: Server, tmp_path: Path) -> None:
    """Pieces of the stream (256 KiB at most) and pages of `GET /logs` join without a
    byte lost, doubled or changed: the local copy is the server's file."""
    project = laptop(tmp_path, server)
    token = server.tokens["alice"]
    script = "head -c 700000 /dev/urandom; sleep 0.2; head -c 300001 /dev/urandom"
    run = qwex_bytes(project, token, "run", "-b", "remote", "--", "sh", "-c", script)
    assert run.returncode == 0, run.stderr
    listed = json.loads(qwex_bytes(project, token, "list", "--json").stdout)
    job_id, run_id = listed[0]["backend_data"]["job_id"], listed[0]["id"]
    served = next((server.data_dir / "jobs" / job_id / ".qwex" / "runs").glob("*/stdout.log"))
    exact = served.read_bytes()
    assert len(exact) == 1_000_001
    assert run.stdout == exact
    assert (project / ".qwex" / "runs" / run_id / "stdout.log").read_bytes() == exact
    # Followed later, by `qwex logs -f`: fetched by pages, then the stream.
    detached = qwex_bytes(project, token, "run", "-d", "-b", "remote", "--", "sh", "-c", script)
    later = detached.stdout.decode().split()[0]
    followed = qwex_bytes(project, token, "logs", "-f", later).stdout
    status = json.loads(qwex_bytes(project, token, "status", "--json", later).stdout)
    folder = server.data_dir / "jobs" / status["backend_data"]["job_id"] / ".qwex" / "runs"
    exact = next(folder.glob("*/stdout.log")).read_bytes()
    assert followed == exact
    assert (project / ".qwex" / "runs" / status["id"] / "stdout.log").read_bytes() == exact
