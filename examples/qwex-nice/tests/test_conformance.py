"""qwex's runner conformance suite, run against this plugin."""

from pathlib import Path

import pytest
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, service_for


class TestNiceRunner(RunnerConformance):
    backend = "nice"
    timeout = 20.0

    @pytest.fixture
    def service(self, tmp_path: Path) -> RunService:
        return service_for(tmp_path / "project")
