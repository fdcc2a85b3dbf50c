"""Secret env on the real Docker daemon: the command gets it, `docker inspect` never shows it
(the agent reads it from a file in the run directory and deletes that file)."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import docker_spec, wait_until
from qwex_core.models import RunStatus
from qwex_core.service import RunService

pytestmark = pytest.mark.docker

VALUE = "s3cr3t-" + secrets.token_hex(16)


@pytest.mark.parametrize("user", [None, "1234:2345"], ids=["own-user", "other-user"])
def test_secret_env_reaches_the_command_and_not_docker_inspect(
    make_service: Callable[..., RunService], docker_api: Any, project: Path, user: str | None
) -> None:
    """Also when the container runs as another user, who reaches the run directory (and the
    secret's file) through the invoking user's group."""
    service = make_service()
    spec = docker_spec(
        ["sh", "-c", 'printf %s "$API_KEY" | sha256sum | cut -c1-64; echo "$PLAIN"; sleep 2'],
        env={"PLAIN": "visible"},
        container={"user": user},
    )
    spec.secret_env = {"API_KEY": VALUE}
    run = service.submit(spec)
    found = wait_until(
        lambda: docker_api.containers(filters={"label": f"qwex.run-id={run.id}"}),
        what="the running container",
    )
    inspected = json.dumps(docker_api.inspect_container(found[0]["Id"]))
    assert "visible" in inspected  # plain env is the container's env, as before
    assert VALUE not in inspected
    final = service.wait(run, timeout=60)
    stderr = service.store.log_path(run.id, "stderr").read_text()
    assert final.status is RunStatus.SUCCEEDED, stderr
    digest = hashlib.sha256(VALUE.encode()).hexdigest()
    assert service.store.log_path(run.id, "stdout").read_text() == f"{digest}\nvisible\n"
    for path in (project / ".qwex").rglob("*"):
        assert not path.is_file() or VALUE.encode() not in path.read_bytes(), path
    assert not (service.store.run_dir(run.id) / "secret-env.json").exists()
