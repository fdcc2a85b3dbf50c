"""The local runner passes the conformance suite that every backend runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, service_for


class TestLocalRunner(RunnerConformance):
    backend = "local"
    timeout = 20.0

    @pytest.fixture
    def service(self, project: Path) -> RunService:
        return service_for(project)
