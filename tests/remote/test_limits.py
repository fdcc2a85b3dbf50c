"""Limits on what a token holder sends, against a real `qwex serve` on loopback.

A request body over `server.max_request_bytes` gets a 413 before the server holds it, each
field of a submission has a documented size (422 naming it), a snapshot that unpacks to
more than `server.max_snapshot_unpacked_bytes` or `server.max_snapshot_files` is refused at
upload and again when a job unpacks it, and a final job's folder is emptied after
`server.job_retention` while its logs stay served.
"""

from __future__ import annotations

import gzip
import hashlib
import signal
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import CONFIG, Server, make_server, submit, wait_final

MiB = 1 << 20


def serve(root: Path, extra: str = "", upload_limit: int = 65536) -> Server:
    config = CONFIG.replace("[server]\n", f"[server]\n{extra}")
    config = config.replace("max_snapshot_bytes = 65536", f"max_snapshot_bytes = {upload_limit}")
    srv = make_server(root, config=config)
    srv.add_token("alice")
    return srv.start()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = serve(
        tmp_path_factory.mktemp("limits"),
        "max_snapshot_unpacked_bytes = 8388608\nmax_snapshot_files = 100\n",
    )
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)


@pytest.fixture
def alice(server: Server) -> Iterator[httpx.Client]:
    with server.client("alice") as client:
        yield client


def data_size(server: Server) -> int:
    """Bytes of every file under the server's data folder (its database, snapshots, jobs)."""
    return sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file())


def rss(server: Server, key: str = "VmHWM") -> int:
    """The server process's peak resident memory so far (or `key` of /proc/PID/status)."""
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key}")


def error(response: httpx.Response) -> dict[str, str]:
    body: dict[str, dict[str, str]] = response.json()
    return body["error"]


def test_a_100_mib_body_is_refused_quickly_without_holding_it(
    server: Server, alice: httpx.Client
) -> None:
    label = "x" * (100 * MiB)
    body = '{"submission_id": "big-1", "command": ["true"], "labels": {"l": "' + label + '"}}'
    before = rss(server)
    response = alice.post("/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert error(response)["code"] == "too_large"
    assert "server.max_request_bytes" in error(response)["message"]
    assert "1048576" in error(response)["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts as it reads
        for i in range(0, len(body), MiB):
            yield body[i : i + MiB].encode()

    chunked = alice.post("/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413 and error(chunked)["code"] == "too_large", chunked.text
    grown = rss(server) - before
    assert grown < 40 * MiB, f"the server grew by {grown / MiB:.0f} MiB"
    page = alice.get("/jobs", params={"limit": 5})
    assert page.status_code == 200 and len(page.content) < 64 * 1024


def test_a_body_under_the_limit_still_passes(alice: httpx.Client) -> None:
    job = submit(alice, "ok-1", ["true"], labels={"team": "x" * 1000})
    assert job["spec"]["labels"]["team"] == "x" * 1000


@pytest.mark.parametrize(
    ("spec", "field", "limit"),
    [
        ({"command": ["x"] * 4097}, "command", "4096"),
        ({"command": ["x" * 131073]}, "command", "131072"),
        ({"labels": {f"k{i}": "v" for i in range(65)}}, "labels", "64"),
        ({"labels": {"k": "v" * 1025}}, "labels", "1024"),
        ({"labels": {"k" * 254: "v"}}, "labels", "253"),
        ({"env": {f"E{i}": "v" for i in range(257)}}, "env", "256"),
        ({"env": {"E": "v" * 131073}}, "env", "131072"),
        ({"env": {"E" * 257: "v"}}, "env", "256"),
        ({"name": "n" * 64}, "name", "63"),
        ({"image": "i" * 513}, "image", "512"),
        ({"network": "n" * 256}, "network", "255"),
        ({"backend": "b" * 65}, "backend", "64"),
        ({"mounts": [{"source": f"/m{i}", "target": f"/t{i}"} for i in range(33)]}, "mounts", "32"),
        ({"mounts": [{"source": "/" + "m" * 4096, "target": "/t"}]}, "mounts", "4096"),
    ],
)
def test_each_field_of_a_submission_has_a_limit_named_in_the_422(
    alice: httpx.Client, spec: dict[str, Any], field: str, limit: str
) -> None:
    response = alice.post(
        "/jobs", json={"submission_id": f"f-{field}-{limit}", "command": ["true"], **spec}
    )
    assert response.status_code == 422, response.text[:300]
    message = error(response)["message"]
    assert field in message and limit in message, message
    assert len(message) < 500, message  # a huge key is not echoed back


def bomb(size: int, files: int = 1) -> bytes:
    """A tar.gz of `files` files of zeros, `size` bytes in all, about 1/1000 of that
    compressed: built from gzip members (a .gz may be several, read as one stream), one
    per MiB of zeros, so a 513 MB bomb costs the test neither the memory nor the time."""
    mib = gzip.compress(bytes(MiB), compresslevel=9, mtime=0)
    parts = []
    for i in range(files):
        info = tarfile.TarInfo(f"zeros-{i}")
        info.size = size // files
        parts.append(gzip.compress(info.tobuf(), mtime=0))
        padded = -(-info.size // 512) * 512  # the data and its padding: zeros
        parts += [mib] * (padded // MiB) + [gzip.compress(bytes(padded % MiB), mtime=0)]
    parts.append(gzip.compress(bytes(1024), mtime=0))  # the end of the archive
    return b"".join(parts)


def put(client: httpx.Client, data: bytes) -> httpx.Response:
    return client.put(f"/snapshots/{hashlib.sha256(data).hexdigest()}", content=data)


def test_a_zip_bomb_is_refused_at_upload(alice: httpx.Client) -> None:
    data = bomb(32 * MiB)
    assert len(data) < 65536  # under max_snapshot_bytes of the test server
    response = put(alice, data)
    assert response.status_code == 413, response.text
    assert error(response)["code"] == "too_large"
    assert "server.max_snapshot_unpacked_bytes" in error(response)["message"]
    many = put(alice, bomb(0, files=101))
    assert many.status_code == 413, many.text
    assert "server.max_snapshot_files" in error(many)["message"]
    assert put(alice, bomb(MiB, files=100)).status_code == 201


def test_a_huge_header_in_a_small_upload_is_refused_without_reading_it(
    server: Server, alice: httpx.Client
) -> None:
    """A pax or GNU long-name header is read into memory whole by tarfile: a 56 MiB one
    compresses to 59 KB (a 1 GiB one, under the default upload limit, to 1 MB)."""
    mib = gzip.compress(bytes(MiB), compresslevel=9, mtime=0)
    for kind in (tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME):
        head = tarfile.TarInfo("././@meta")
        head.type, head.size = kind, 56 * MiB
        parts = [gzip.compress(head.tobuf(format=tarfile.USTAR_FORMAT), mtime=0)]
        data = b"".join([*parts, *([mib] * 56), gzip.compress(bytes(1024), mtime=0)])
        before = rss(server)
        response = put(alice, data)
        grown = rss(server) - before
        assert grown < 40 * MiB, f"the server's peak memory grew by {grown / MiB:.0f} MiB"
        assert response.status_code == 422, response.text
        assert error(response) == {
            "code": "snapshot_invalid",
            "message": "the snapshot has a tar header (pax or long name) over 1048576 bytes",
        }


def test_the_510_kb_bomb_of_the_issue_is_refused_by_the_default_limit(tmp_path: Path) -> None:
    """Found: a 510 KB upload under a 1 MiB limit unpacked to 513 MB. The unpacked
    limit defaults to 16 times the upload limit."""
    srv = serve(tmp_path / "d", upload_limit=MiB)
    data = bomb(513 * 10**6)
    assert len(data) < 600_000
    try:
        with srv.client("alice") as alice:
            response = put(alice, data)
        assert response.status_code == 413, response.text
        assert "more than 16777216 bytes" in error(response)["message"]
        assert "server.max_snapshot_unpacked_bytes" in error(response)["message"]
        assert data_size(srv) < 4 * MiB, "the bomb was unpacked on the server"
    finally:
        srv.stop()


def test_a_snapshot_over_the_limits_of_today_is_not_unpacked(tmp_path: Path) -> None:
    srv = serve(tmp_path / "a", "max_snapshot_unpacked_bytes = 8388608\n")
    data = bomb(4 * MiB)
    try:
        with srv.client("alice") as alice:
            assert put(alice, data).status_code == 201
    finally:
        srv.stop()
    toml = srv.project / "qwex.toml"
    # The limit back to its default for this server: 16 x 65536 bytes.
    toml.write_text(toml.read_text().replace("max_snapshot_unpacked_bytes = 8388608\n", ""))
    srv.start()
    try:
        with srv.client("alice") as alice:
            sha = hashlib.sha256(data).hexdigest()
            job = submit(alice, "bomb-1", ["ls", "-l"], snapshot=sha)
            done = wait_final(alice, job["id"])
        assert done["status"] == "failed", done
        assert "server.max_snapshot_unpacked_bytes" in (done["reason"] or ""), done
        assert not (srv.data_dir / "jobs" / job["id"]).exists()  # nothing left behind
    finally:
        srv.stop()


def test_a_final_jobs_folder_is_emptied_after_the_retention_and_its_logs_kept(
    tmp_path: Path,
) -> None:
    from qwex_core.snapshot import make_snapshot

    srv = serve(tmp_path / "r", 'job_retention = "1s"\n')
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "data.txt").write_text("from the snapshot\n")
    snap = make_snapshot(tmp_path / "code", limit=MiB)
    try:
        with srv.client("alice") as alice:
            alice.put(f"/snapshots/{snap.sha256}", content=snap.data)
            command = ["sh", "-c", "cat data.txt; head -c 100000 /dev/zero > made.bin; echo done"]
            job = submit(alice, "ret-1", command, snapshot=snap.sha256)
            done = wait_final(alice, job["id"])
            assert done["status"] == "succeeded", done
            folder = srv.data_dir / "jobs" / job["id"]
            deadline = time.monotonic() + 20
            while (folder / "made.bin").exists() or (folder / "data.txt").exists():
                assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
                time.sleep(0.2)
            assert [p.name for p in folder.iterdir()] == [".qwex"]
            logs = alice.get(f"/jobs/{job['id']}/logs").json()
            assert logs["data"] == "from the snapshot\ndone\n" and logs["final"], logs
            follow = alice.get(f"/jobs/{job['id']}/logs/follow").text
            assert "event: end" in follow and "succeeded" in follow, follow
            assert alice.get(f"/jobs/{job['id']}").json()["status"] == "succeeded"
    finally:
        srv.stop()
