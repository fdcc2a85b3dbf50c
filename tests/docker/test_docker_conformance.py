"""The Docker runner passes the conformance suite every backend runs, in both test images:
one with a shell and Python, one holding nothing but a static busybox (no libc, no /tmp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from docker_support import BUSYBOX, PYTHON
from qwex_core.models import JobSpec, Run
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, service_for
from qwex_docker.spec import LABEL_RUN_ID

pytestmark = pytest.mark.docker


class DockerConformance(RunnerConformance):
    backend = "docker"
    timeout = 60.0
    image: ClassVar[str]

    @pytest.fixture
    def service(self, qwex_project: Path, docker_ready: dict[str, str]) -> RunService:
        return service_for(qwex_project, backend="docker", image=self.image)

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        api: Any = service.runner("docker").api  # type: ignore[attr-defined]
        api.kill(service.store.load(run.id).backend_data["container_id"], signal="SIGKILL")

    def workdir_seen(self, service: RunService, host_dir: Path) -> str:
        relative = host_dir.relative_to(service.store.project_dir).as_posix()
        return "/workspace" if relative == "." else f"/workspace/{relative}"

    def failing_job(self, service: RunService) -> JobSpec:
        """An image the daemon does not have and cannot pull (CI is offline)."""
        return service.job(["true"], container={"image": "qwex-test/no-such-image:0"})

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """The run's containers on the real daemon, found by the label the runner puts on
        them, that are not stopped (created ones count: they can still start)."""
        api: Any = service.runner("docker").api  # type: ignore[attr-defined]
        found = api.containers(all=True, filters={"label": f"{LABEL_RUN_ID}={run.id}"})
        return [
            f"container {c['Id'][:12]} ({c['State']})"
            for c in found
            if c["State"] in ("created", "running", "paused", "restarting")
        ]


class TestDockerRunnerBusybox(DockerConformance):
    image = BUSYBOX


class TestDockerRunnerPython(DockerConformance):
    image = PYTHON
