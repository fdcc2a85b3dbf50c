"""`qwex run --dry-run -b docker` shows the container a start would create, as the Docker
API's create request, and creates nothing: not the local agent's Python command line,
which no container runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX

pytestmark = pytest.mark.docker

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def test_a_dry_run_shows_the_container_and_creates_nothing(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    before = {c["Id"] for c in docker_api.containers(all=True)}
    result = qwex(
        "run", "--dry-run", "-b", "docker", "--image", BUSYBOX, "-e", "MODE=x", "--cpu", "1",
        "--", "echo", "hello world",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["name"].startswith("qwex-")
    body = shown["body"]
    assert body["Image"] == BUSYBOX
    assert body["Entrypoint"] == ["/qwex/bin/qwex"]
    assert body["Cmd"][:2] == ["run", "--local"] and body["Cmd"][-2:] == ["echo", "hello world"]
    assert "MODE=x" in body["Env"]
    assert body["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert any(m["Target"] == "/qwex" for m in body["HostConfig"]["Mounts"])
    assert "python" not in result.stdout.lower()  # not the local agent's command line
    assert {c["Id"] for c in docker_api.containers(all=True)} == before
    assert not (project / ".qwex" / "runs").exists() or not any(
        (project / ".qwex" / "runs").iterdir()
    )


def test_a_dry_run_of_a_missing_image_says_so(project: Path, qwex: Qwex, docker_ready: Any) -> None:
    result = qwex(
        "run", "--dry-run", "-b", "docker", "--image", "qwex-test/none:missing", "--", "true"
    )
    assert result.returncode != 0
    assert "image not found: qwex-test/none:missing" in result.stderr
    assert "Traceback" not in result.stderr
