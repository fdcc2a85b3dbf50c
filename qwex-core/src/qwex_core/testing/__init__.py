"""Test helpers for backend authors: the runner conformance suite, as a pytest plugin.

    # conftest.py (or the test module)
    pytest_plugins = ["qwex_core.testing"]

    # test_mine.py
    from qwex_core.testing import RunnerConformance

    class TestMyRunner(RunnerConformance):
        backend = "mine"

        def kill_supervisor(self, service, run):
            ...  # kill the run's agent as a crash would

Loaded as a plugin, the suite's assertions are rewritten (a failure shows the values)
and the `qwex_project` fixture (an isolated project: no user configuration, no `QWEX_*`
variables) comes with it. Requires pytest (`pip install qwex-core[testing]`).
"""

import pytest

pytest.register_assert_rewrite("qwex_core.testing.conformance")

from qwex_core.testing.conformance import RunnerConformance, service_for  # noqa: E402
from qwex_core.testing.fixtures import qwex_project  # noqa: E402

__all__ = ["RunnerConformance", "qwex_project", "service_for"]
