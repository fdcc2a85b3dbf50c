"""The server's image (`nox -s server_image`) as the chart runs it: non-root, its root
read-only, `qwex serve` answering /api/v1/health, the tokens' bootstrap command there, and a
SIGTERM stop well inside the chart's terminationGracePeriodSeconds."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.docker

IMAGE = "qwex.local/qwex-server:0.1.0"
"""noxfile.SERVER_IMAGE."""
GRACE = 30
"""The chart's default terminationGracePeriodSeconds."""


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image() -> str:
    """The built image; under CI a missing one is a failure (`.ci/run` builds it)."""
    found = docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE)
    if found.returncode != 0:
        problem = f"no image {IMAGE} (or no Docker daemon): build it with `nox -s server_image`"
        if os.environ.get("CI"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return IMAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(image: str) -> Iterator[tuple[str, str]]:
    """The image's server on a loopback port of this machine: (container name, base URL)."""
    name = f"qwex-server-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = docker(
        "run", "-d", "--name", name, "--network", "host", "--read-only",
        "--tmpfs", "/tmp", "--tmpfs", "/var/lib/qwex:uid=10001,gid=10001",
        image, "--host", "127.0.0.1", "--port", str(port),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    try:
        yield name, f"http://127.0.0.1:{port}/api/v1"
    finally:
        docker("rm", "-f", name)


def wait_healthy(url: str, name: str, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"{url}/health", timeout=2)
            if answer.status_code == 200:
                return dict(answer.json())
        time.sleep(0.2)
    raise AssertionError(f"no health answer in {timeout} s:\n{docker('logs', name).stderr}")


def test_the_image_serves_health_as_a_non_root_user_on_a_read_only_root(
    served: tuple[str, str],
) -> None:
    name, url = served
    assert wait_healthy(url, name)["status"] == "ok"
    who = docker("exec", name, "id", "-u")
    assert who.stdout.strip() == "10001"
    written = docker("exec", name, "touch", "/usr/local/x")
    assert written.returncode != 0 and "Read-only file system" in written.stderr


def test_sigterm_stops_it_well_inside_the_grace_period(served: tuple[str, str]) -> None:
    name, url = served
    wait_healthy(url, name)
    began = time.monotonic()
    stopped = docker("stop", "-t", str(GRACE), name, timeout=GRACE + 30)
    took = time.monotonic() - began
    assert stopped.returncode == 0, stopped.stderr
    assert took < GRACE / 2, f"stopped in {took:.1f} s"
    status = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert status == "0", docker("logs", name).stderr
    assert "Application shutdown complete" in docker("logs", name).stderr


def test_the_token_bootstrap_the_chart_runs_is_in_the_image(image: str) -> None:
    help_text = docker("run", "--rm", "--network", "none", image, "token", "add", "--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "--secret-file" in help_text.stdout and "--exist-ok" in help_text.stdout
