"""The daemon's API version, remembered per local socket so that a run does not ask for it
every time: a remembered version must never turn into a failed run or a vague message.
And `QWEX_TIMINGS`, which shows where a Docker run's start goes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, docker_spec, wait_gone
from qwex_core.errors import QwexError
from qwex_core.models import RunStatus
from qwex_core.testing.conformance import service_for
from qwex_docker.client import connect_reusing, daemon_address, socket_identity

pytestmark = pytest.mark.docker
QWEX = str(Path(sys.executable).parent / "qwex")


@pytest.fixture
def cache(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    agent_dir: Path,
    docker_ready: Any,
) -> Path:
    """A user cache of its own (the agent is still found where the session built it), set
    after `project` cleared the `QWEX_*` variables."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("QWEX_DOCKER_AGENT_DIR", str(agent_dir.parent))
    return tmp_path / "cache" / "qwex" / "docker-api-versions.json"


def remembered(cache: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(cache.read_text())
    return data


def test_the_version_is_asked_once_then_reused(cache: Path, docker_api: Any) -> None:
    first, reused_first = connect_reusing(None, 30)
    second, reused_second = connect_reusing(None, 30)
    assert (reused_first, reused_second) == (False, True)
    daemon = docker_api.version(api_version=False)["ApiVersion"]
    assert first.api_version == second.api_version == daemon
    assert second.ping()
    entry = remembered(cache)[daemon_address(None)]
    assert entry == {"socket": socket_identity(daemon_address(None)), "version": daemon}


def test_a_version_the_daemon_refuses_is_asked_again(
    cache: Path, project: Path, docker_api: Any
) -> None:
    """As after a daemon upgrade that kept its socket: the run still works."""
    address = daemon_address(None)
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({address: {"socket": socket_identity(address), "version": "1.99"}}))
    service = service_for(project, backend="docker")
    run = service.wait(service.submit(docker_spec(["true"])), timeout=60)
    assert run.status is RunStatus.SUCCEEDED, run.reason
    daemon = docker_api.version(api_version=False)["ApiVersion"]
    assert remembered(cache)[address]["version"] == daemon


def test_a_dead_daemon_behind_a_remembered_version_is_a_clear_error(
    cache: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket file outlived its daemon (a crash): the message says so, the run failed."""
    path = project / "dead.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the file stays; nobody listens
    address = f"unix://{path}"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({address: {"socket": socket_identity(address), "version": "1.41"}}))
    monkeypatch.setenv("QWEX_DOCKER_BASE_URL", address)
    service = service_for(project, backend="docker")
    with pytest.raises(QwexError, match=f"the Docker daemon at {address} refused the connection"):
        service.submit(docker_spec(["true"]))
    (run,) = service.list()
    assert run.status is RunStatus.FAILED and "refused the connection" in (run.reason or "")
    assert address not in remembered(cache)


def test_timings_of_a_docker_run_show_the_daemon_calls_in_order(
    project: Path, docker_ready: Any, docker_api: Any
) -> None:
    """`QWEX_TIMINGS=1`: the Docker phases between the record and the end, in order."""
    result = subprocess.run(
        [QWEX, "run", "-b", "docker", "--image", BUSYBOX, "--", "echo", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QWEX_TIMINGS": "1"},
    )
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    lines = [line.split() for line in result.stderr.splitlines() if line.startswith("qwex-")]
    assert [line[1] for line in lines] == [
        "cli-start",
        "job-built",
        "record-created",
        "docker-connected",  # without the SDK: no `docker-imported` (qwex_docker.lean)
        "image-inspected",
        "container-created",
        "container-started",
        "backend-started",
        "record-final",
        "exit",
    ]
    walls = [float(line[2]) for line in lines]
    assert walls == sorted(walls)
    run_id = next(p.name for p in (project / ".qwex" / "runs").iterdir())
    wait_gone(docker_api, run_id)
