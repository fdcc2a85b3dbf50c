"""A run's container started without the docker SDK (`qwex_docker.lean`): the create request
is the one the SDK sends for the same arguments, and `qwex run -b docker` imports no SDK.

The SDK's side is its own `APIClient` (no daemon needed to build a request): what it would
POST is taken at its `_post_json`, the point where it serialises the body."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, docker_spec, wait_gone
from qwex_core.models import Mount, ResourceRequirements
from qwex_core.store import RunStore
from qwex_docker import lean
from qwex_docker import spec as plan


def sdk_request(
    create: dict[str, Any], host_config: dict[str, Any], version: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(query, body) the SDK POSTs for `create_container(host_config=create_host_config(...))`."""
    from docker.api.client import APIClient

    sent: dict[str, Any] = {}

    class Captured(Exception):
        pass

    def post_json(url: str, data: Any, **kwargs: Any) -> Any:
        sent["body"] = {k: v for k, v in data.items() if v is not None}
        sent["params"] = kwargs.get("params") or {}
        raise Captured

    client = APIClient(base_url="unix:///nowhere.sock", version=version)
    client._post_json = post_json  # the SDK's own request, taken where it is serialised
    with pytest.raises(Captured):
        client.create_container(host_config=client.create_host_config(**host_config), **create)
    return sent["params"], json.loads(json.dumps(sent["body"]))


VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "limits": {"resources": ResourceRequirements(cpu=1.5, memory="256Mi")},
    "gpu": {"resources": ResourceRequirements(gpu=2)},
    "another user": {"container": {"user": "4242:4242"}},
    "the image's user": {"container": {"user": "image"}},
    "network none, read-only project": {
        "container": {"network": "none", "read_only_project": True}
    },
    "no project mount, other workdir": {"container": {"mount_project": False, "workdir": "/srv"}},
    "mounts, env, labels": {
        "mounts": [Mount(source=".", target="/data", read_only=True)],
        "env": {"A": "1", "EMPTY": ""},
        "labels": {"team": "ml"},
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("auto_remove", [True, False])
@pytest.mark.parametrize("version", ["1.40", "1.47"])
def test_the_create_request_is_the_sdks(
    project: Path, variant: str, auto_remove: bool, version: str
) -> None:
    store = RunStore(project)
    run = store.create(docker_spec(["python", "train.py"], **VARIANTS[variant]))
    facts = plan.HostFacts(
        project, store.run_dir(run.id), Path("/agents/linux-amd64"), None, "1000:100"
    )
    create, host_config = plan.create_args(run, facts, auto_remove=auto_remove)
    params, body = lean.create_request(create, host_config)
    assert (params, json.loads(json.dumps(body))) == sdk_request(create, host_config, version)


def test_an_argument_it_does_not_know_is_refused() -> None:
    """A new `create_args` field fails here (and the backend keeps the SDK for it) instead of
    being dropped from what Docker is asked for."""
    with pytest.raises(ValueError, match="shm_size"):
        lean.create_request({"image": "x", "name": "n"}, {"shm_size": 1})


def test_which_daemons_it_speaks_to() -> None:
    assert lean.socket_path("unix:///var/run/docker.sock", tls=False) == "/var/run/docker.sock"
    assert lean.socket_path("unix:///var/run/docker.sock", tls=True) is None
    assert lean.socket_path("tcp://127.0.0.1:2375", tls=False) is None
    assert [lean.speaks(v) for v in ("1.39", "1.40", "1.47", "2.0", "x")] == [
        False,
        True,
        True,
        True,
        False,
    ]


PROBE = """
import json, sys
from qwex_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.mark.docker
@pytest.mark.parametrize("detach", [False, True])
def test_a_docker_run_imports_no_sdk(
    project: Path, docker_ready: Any, docker_api: Any, detach: bool
) -> None:
    args = ["run", "-q", *(["-d"] if detach else []), "-b", "docker", "--image", BUSYBOX]
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args, "--", "true"],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=120,
    )
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["code"] in (0, None), result.stderr
    sdk = [m for m in last["modules"] if m.split(".")[0] in ("docker", "requests", "urllib3")]
    assert sdk == []
    assert "qwex_core.runners.local" not in last["modules"]  # asked of a local run only
    (run_id,) = [p.name for p in (project / ".qwex" / "runs").iterdir()]
    wait_gone(docker_api, run_id)


@pytest.mark.parametrize("chunked", [False, True])
def test_an_answer_whole_or_chunked_is_read_whole(tmp_path: Path, chunked: bool) -> None:
    """`lean.exchange` against the standard library's HTTP server on a unix socket, with a
    body longer than one read and a chunked one (as dockerd sends JSON of over 2 KiB)."""
    import http.server
    import socketserver
    import threading

    body = json.dumps({"message": "x" * 100_000}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for at in range(0, len(body), 3000):
                    part = body[at : at + 3000]
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            self.close_connection = True

        def address_string(self) -> str:
            return "unix"

    path = str(tmp_path / "d.sock")
    with socketserver.UnixStreamServer(path, Handler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        daemon = lean.Daemon(path, "1.47", timeout=10)
        with pytest.raises(lean.LeanError) as raised:
            daemon.request("GET", "/images/x/json")
        thread.join()
    assert raised.value.status == 404
    assert raised.value.explanation == "x" * 100_000
