"""Test helpers for backend authors: the runner conformance suite.

    from qwex_core.testing import RunnerConformance

    class TestMyRunner(RunnerConformance):
        backend = "mine"

        @pytest.fixture
        def service(self, tmp_path):
            return service_for(tmp_path)

Requires pytest (`pip install qwex-core[testing]`).
"""

from qwex_core.testing.conformance import RunnerConformance, service_for

__all__ = ["RunnerConformance", "service_for"]
