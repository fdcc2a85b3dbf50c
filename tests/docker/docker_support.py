"""Constants and helpers shared by the Docker backend tests (importable as `docker_support`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from qwex_core.models import ContainerConfig, JobSpec

BUSYBOX = "qwex-test/busybox"
PYTHON = "qwex-test/python"
BUSYBOX_ARM64 = "qwex-test/busybox-arm64"
NOSHELL_ARM64 = "qwex-test/noshell-arm64"
S390X = "qwex-test/s390x"
"""linux/arm64 images (run under qemu) and a linux/s390x one (metadata only, never run),
from .ci/foreign-test-images.sh."""
HOW_TO = "run `.ci/setup-docker.sh && .ci/setup-arm64.sh && nox -s images agent` (or `.ci/run`)"


def unavailable(message: str) -> None:
    """Skip on a laptop, fail under CI: a Docker test must never silently not run in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI this is an error ({HOW_TO})", pytrace=False)
    pytest.skip(f"{message} ({HOW_TO})")


def docker_spec(command: list[str], image: str = BUSYBOX, **fields: Any) -> JobSpec:
    """A docker job; `container={...}` fields are merged over the image."""
    container = ContainerConfig(image=image, **fields.pop("container", {}))
    return JobSpec(command=command, backend="docker", container=container, **fields)


def read_record(project: Path, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (project / ".qwex" / "runs" / run_id / "run.json").read_text()
    )
    return data


def wait_until(predicate: Any, timeout: float = 30, what: str = "condition") -> Any:
    """Poll `predicate()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def wait_gone(api: Any, run_id: str, timeout: float = 15) -> None:
    """Wait until no container of run `run_id` exists (the daemon auto-removes exited ones)."""
    wait_until(
        lambda: not api.containers(all=True, filters={"label": f"qwex.run-id={run_id}"}),
        timeout=timeout,
        what=f"the container of run {run_id} to be removed",
    )
