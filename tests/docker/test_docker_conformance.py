"""The Docker runner passes the conformance suite every backend runs, in both test images:
one with a shell and Python, one holding nothing but a static busybox (no libc, no /tmp)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from docker_support import BUSYBOX, PYTHON
from qwex_core.models import ContainerConfig, JobSpec
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, service_for

pytestmark = pytest.mark.docker


class DockerConformance(RunnerConformance):
    backend = "docker"
    timeout = 60.0
    image: ClassVar[str]

    @pytest.fixture
    def service(self, project: Path, docker_ready: dict[str, str]) -> RunService:
        return service_for(project, backend="docker", image=self.image)

    def make_spec(self, command: list[str], **fields: Any) -> JobSpec:
        return JobSpec(
            command=command,
            backend=self.backend,
            container=ContainerConfig(image=self.image),
            **fields,
        )


class TestDockerRunnerBusybox(DockerConformance):
    image = BUSYBOX


class TestDockerRunnerPython(DockerConformance):
    image = PYTHON
