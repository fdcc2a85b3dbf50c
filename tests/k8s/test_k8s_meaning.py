"""What the cluster's view means for a run, given its record (offline: real `V1Job`/`V1Pod`
objects as the API server's JSON makes them, the runner built from a project's settings,
no cluster asked): a run admitted by Kueue stays `queued` until its pod runs (no start
timeout under it), a Job between two attempts is alive, a pod unschedulable past
`schedule_timeout` is the run's failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from qwex_core.lifecycle import Seen
from qwex_core.models import Run
from qwex_core.testing import service_for
from qwex_k8s.runner import KubernetesRunner
from qwex_k8s.status import observe
from test_k8s_status import T0, job, pod, terminated

UNSCHEDULABLE = [
    {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/1 nodes are available: 1 Insufficient cpu.",
        "lastTransitionTime": T0,
    }
]


@pytest.fixture
def runner(qwex_project: Path) -> KubernetesRunner:
    (qwex_project / "qwex.toml").write_text('[k8s]\nnamespace = "nowhere"\nschedule_timeout = 60\n')
    return cast(KubernetesRunner, service_for(qwex_project).runner("k8s"))


def record(runner: KubernetesRunner, status: str, **more: Any) -> Run:
    spec = service_for(runner.store.project_dir).job(["true"], backend="k8s")
    run = runner.store.create(spec)
    return Run.model_validate({**run.model_dump(mode="json"), "status": status, **more})


def test_admitted_but_not_running_is_still_queued(runner: KubernetesRunner) -> None:
    view = observe(job(), [pod(phase="Pending")])
    seen = runner._meaning(record(runner, "queued"), view, None)
    assert seen.queued is not None and seen.queued.startswith("admitted by Kueue; its pod")
    assert runner._meaning(record(runner, "pending"), view, None).queued is None


def test_a_job_between_two_attempts_is_alive(runner: KubernetesRunner) -> None:
    view = observe(job(active=0), [pod(terminated(1, "Error"), phase="Failed")], retries=1)
    assert view.seen is Seen.STARTING
    ran = record(runner, "running", started_at="2026-11-27T12:00:05Z")
    assert runner._meaning(ran, view, None).seen is Seen.ALIVE
    assert runner._meaning(record(runner, "pending"), view, None).seen is Seen.STARTING


def test_unschedulable_past_the_schedule_timeout_fails(runner: KubernetesRunner) -> None:
    view = observe(job(), [pod(conditions=UNSCHEDULABLE)])
    seen = runner._meaning(record(runner, "pending"), view, None)  # T0 is long past 60 s
    assert (seen.seen, seen.status) == (Seen.EXITED, "failed")
    assert (seen.reason or "").startswith("Unschedulable: 0/1 nodes are available")
