"""Test helpers for backend authors: the runner conformance suite, as a pytest plugin.

    # conftest.py
    pytest_plugins = ["qwex_core.testing"]

    # test_mine.py
    from qwex_core.testing import RunnerConformance

    class TestMyRunner(RunnerConformance):
        backend = "mine"

        def kill_supervisor(self, service, run):
            ...  # kill the run's agent as a crash would

        def failing_job(self, service):
            ...  # a job your backend's `start` really fails to start

        def still_running(self, service, run):
            ...  # what of the run is still alive, as your backend sees it (default: here)

A backend built on `qwex_core.observed.ObservedRunner` subclasses `ObservedConformance`
instead, which adds `queued_job` and `far_side_down`.

Loaded as a plugin, the suite's assertions are rewritten (a failure shows the values)
and the `qwex_project` fixture (an isolated project: no user configuration, no `QWEX_*`
variables) comes with it. Requires pytest (`pip install qwex-core[testing]`).
"""

import pytest

pytest.register_assert_rewrite("qwex_core.testing.conformance")

from qwex_core.testing.conformance import (  # noqa: E402
    ObservedConformance,
    RunnerConformance,
    not_applicable,
    service_for,
)
from qwex_core.testing.fixtures import qwex_project  # noqa: E402
from qwex_core.testing.processes import processes_in_groups, processes_of_run  # noqa: E402

__all__ = [
    "ObservedConformance",
    "RunnerConformance",
    "not_applicable",
    "processes_in_groups",
    "processes_of_run",
    "qwex_project",
    "service_for",
]
