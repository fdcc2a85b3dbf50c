"""The status mapping, table-tested from real `V1Job`/`V1Pod` objects (deserialized from
the API's JSON by the official client, as a watch does) and Workload dicts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from qwex_core.lifecycle import Seen
from qwex_k8s.status import View, attempts, observe

NOTHING, GONE, PENDING, RUNNING, FINAL = (
    Seen.NOTHING,
    Seen.GONE,
    Seen.STARTING,
    Seen.ALIVE,
    Seen.EXITED,
)
QUEUED = "queued"
"""Waiting in Kueue's queue: `STARTING` with Kueue's words in `queued`."""


def phase(view: View) -> Seen | str:
    return QUEUED if view.observation.queued is not None else view.seen


def said(view: View) -> str:
    """What the view says in words: Kueue's, why it waits, or the end's reason."""
    seen = view.observation
    return seen.queued or seen.reason or view.waiting


T0 = "2026-11-27T12:00:00Z"
T1 = "2026-11-27T12:00:05Z"
T2 = "2026-11-27T12:00:09Z"
RECORD = {"status": "failed", "reason": "killed by SIGKILL", "exit_code": 137, "signal": "SIGKILL"}


def api(kind: str, data: dict[str, Any]) -> Any:
    """A model object exactly as the client builds it from the API server's JSON."""
    return client.ApiClient().deserialize(json.dumps(data), kind, "application/json")


def job(
    *,
    suspend: bool = False,
    conditions: list[tuple[str, str, str]] | None = None,
    **status: Any,
) -> Any:
    """A V1Job; each condition is a true (type, reason, message)."""
    conds = [
        {"type": t, "status": "True", "reason": r, "message": m} for t, r, m in (conditions or [])
    ]
    return api(
        "V1Job",
        {
            "metadata": {"name": "qwex-run", "uid": "u1", "creationTimestamp": T0},
            "spec": {"suspend": suspend, "template": {"spec": {"containers": []}}},
            "status": {"conditions": conds, **status},
        },
    )


def container(name: str, state: dict[str, Any], image: str = "python:3.11") -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


def pod(
    main: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    *,
    phase: str = "Pending",
    conditions: list[dict[str, str]] | None = None,
    reason: str | None = None,
    message: str | None = None,
    name: str = "qwex-run-abcde",
    created: str = T0,
) -> Any:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if main is not None:
        status["containerStatuses"] = [container("main", main)]
    if init is not None:
        status["initContainerStatuses"] = [container("qwex-agent", init, "qwex/agent:0.1.0")]
    if reason:
        status["reason"], status["message"] = reason, message
    return api(
        "V1Pod",
        {
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": []},
            "status": status,
        },
    )


def terminated(code: int, reason: str = "Completed", message: str | None = None) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "message": message,
            "startedAt": T1,
            "finishedAt": T2,
        }
    }


def workload(*conds: tuple[str, str, str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "job-qwex-run-1"},
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conds
            ]
        },
    }


QUOTA = "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor qwex-flavor, 1 more needed"

# name: (job, pods, workload, phase, status, reason fragment, exit code)
CASES: dict[str, tuple[Any, list[Any], Any, Seen | str, str | None, str, int | None]] = {
    "no Job, never created": (None, [], None, NOTHING, None, "", None),
    "queued for quota, Kueue's words": (
        job(suspend=True),
        [],
        workload(("QuotaReserved", "False", "Pending", QUOTA)),
        QUEUED,
        None,
        "insufficient unused quota for cpu",
        None,
    ),
    "queued, no Workload yet": (
        job(suspend=True),
        [],
        None,
        QUEUED,
        None,
        "waiting for Kueue",
        None,
    ),
    "preempted, queued again": (
        job(suspend=True),
        [],
        workload(
            ("QuotaReserved", "False", "Pending", QUOTA),
            ("Evicted", "True", "Preempted", "Preempted to accommodate a higher priority Workload"),
            (
                "Preempted",
                "True",
                "InClusterQueue",
                "Preempted to accommodate a higher priority Workload",
            ),
        ),
        QUEUED,
        None,
        "Preempted: Preempted to accommodate",
        None,
    ),
    "being evicted, quota still reserved": (
        job(suspend=True),
        [],
        workload(
            ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
            ("Admitted", "True", "Admitted", "The workload is admitted"),
            ("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: 1)"),
        ),
        QUEUED,
        None,
        "Evicted: Preempted to accommodate a workload",
        None,
    ),
    "admitted, its Job not resumed yet (or its Workload read before an eviction)": (
        job(suspend=True),
        [],
        workload(
            ("QuotaReserved", "True", "QuotaReserved", "Quota reserved in ClusterQueue cq"),
            ("Admitted", "True", "Admitted", "The workload is admitted"),
        ),
        PENDING,
        None,
        "admitted by Kueue in q",
        None,
    ),
    "requeued after a preemption, waiting for quota": (
        job(suspend=True),
        [],
        workload(
            ("Evicted", "False", "QuotaReserved", "Previously: Preempted"),
            ("Requeued", "True", "Preempted", "Preempted to accommodate a workload (UID: 1)"),
        ),
        QUEUED,
        None,
        "Preempted: Preempted to accommodate",
        None,
    ),
    "init container at work": (
        job(),
        [pod(init={"running": {"startedAt": T0}}, main={"waiting": {"reason": "PodInitializing"}})],
        None,
        PENDING,
        None,
        "pending",
        None,
    ),
    "running": (
        job(active=1),
        [pod({"running": {"startedAt": T1}}, phase="Running")],
        None,
        RUNNING,
        None,
        "",
        None,
    ),
    "the agent's record in the termination message": (
        job(),
        [pod(terminated(137, "Error", json.dumps(RECORD)), phase="Failed")],
        None,
        FINAL,
        "failed",
        "killed by SIGKILL",
        137,
    ),
    "succeeded without a record": (
        job(conditions=[("Complete", "", "")]),
        [pod(terminated(0), phase="Succeeded")],
        None,
        FINAL,
        "succeeded",
        "exit code 0",
        0,
    ),
    "exit code without a record": (
        job(),
        [pod(terminated(3, "Error"), phase="Failed")],
        None,
        FINAL,
        "failed",
        "exit code 3",
        3,
    ),
    "OOMKilled": (
        job(),
        [pod(terminated(137, "OOMKilled"), phase="Failed")],
        None,
        FINAL,
        "failed",
        "OOMKilled",
        137,
    ),
    "evicted by the kubelet": (
        job(),
        [pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")],
        None,
        FINAL,
        "failed",
        "Evicted: The node was low on resource: memory.",
        None,
    ),
    "the image is not on the node": (
        job(),
        [
            pod(
                main={
                    "waiting": {
                        "reason": "ErrImageNeverPull",
                        "message": 'Container image "python:3.11" is not present with pull policy of Never',
                    }
                },
                init={"terminated": {"exitCode": 0, "reason": "Completed"}},
            )
        ],
        None,
        FINAL,
        "failed",
        "ImagePullBackOff: python:3.11",
        None,
    ),
    "the agent image cannot be pulled": (
        job(),
        [
            pod(
                init={
                    "waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}
                }
            )
        ],
        None,
        FINAL,
        "failed",
        "ImagePullBackOff: qwex/agent:0.1.0: the agent image",
        None,
    ),
    "unschedulable": (
        job(),
        [
            pod(
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
                        "lastTransitionTime": T0,
                    }
                ]
            )
        ],
        None,
        PENDING,
        None,
        "Unschedulable: 0/1 nodes are available",
        None,
    ),
    "past its deadline": (
        job(
            conditions=[
                ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            ]
        ),
        [],
        None,
        FINAL,
        "failed",
        "DeadlineExceeded: Job was active longer",
        None,
    ),
    "its pod deleted from outside": (
        job(
            conditions=[
                ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            ]
        ),
        [],
        None,
        FINAL,
        "lost",
        "its pod is gone",
        None,
    ),
    "its pod deleted while running, the Job failed": (
        job(conditions=[("Failed", "BackoffLimitExceeded", "Job has reached the backoff limit")]),
        [
            api(
                "V1Pod",
                {
                    "metadata": {
                        "name": "qwex-run-abcde",
                        "creationTimestamp": T0,
                        "deletionTimestamp": T2,
                    },
                    "spec": {"containers": []},
                    "status": {
                        "phase": "Failed",
                        "containerStatuses": [container("main", terminated(137, "Error"))],
                    },
                },
            )
        ],
        None,
        FINAL,
        "lost",
        "was deleted outside qwex",
        137,
    ),
    "disrupted pod, Job not failed: not final": (
        job(active=0),
        [
            pod(
                terminated(143, "Error"),
                phase="Failed",
                conditions=[
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "PreemptionByScheduler",
                    }
                ],
            )
        ],
        None,
        PENDING,
        None,
        "disrupted",
        None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_status_mapping(case: str) -> None:
    the_job, pods, the_workload, phase_, status, reason, code = CASES[case]
    seen = observe(the_job, pods, the_workload, known=case != "no Job, never created", queue="q")
    assert phase(seen) == phase_
    assert seen.observation.status == status
    assert reason in said(seen)
    assert seen.observation.exit_code == code


def test_a_vanished_job_is_gone_once_it_was_created() -> None:
    assert observe(None, [], known=True).seen is GONE


def test_the_newest_pod_speaks_for_the_run() -> None:
    old = pod(terminated(1, "Error"), phase="Failed", name="a", created=T0)
    new = pod({"running": {"startedAt": T2}}, phase="Running", name="b", created=T1)
    seen = observe(job(active=1), [old, new], retries=2)
    assert (seen.seen, seen.pod, seen.observation.what) == (RUNNING, "b", "its pod b")


def test_a_failed_pod_with_retries_left_is_not_the_end() -> None:
    seen = observe(job(active=0), [pod(terminated(1, "Error"), phase="Failed")], retries=2)
    assert seen.seen is PENDING


def test_stuck_pods_are_flagged_for_deletion() -> None:
    _, pods, _, *_ = CASES["the image is not on the node"]
    assert observe(job(), pods).stuck
    _, pods, _, *_ = CASES["OOMKilled"]
    assert not observe(job(), pods).stuck


def test_a_deleted_pod_with_retries_left_is_not_the_end() -> None:
    """`kubectl delete pod` with `retries` > 0: the Job makes a new pod; the run is not
    `lost` (it used to be, with the first pod's 143, while the next attempt ran on)."""
    deleted = pod(terminated(143, "Error"), phase="Failed")
    deleted.metadata.deletion_timestamp = T2
    seen = observe(job(active=0), [deleted], retries=1)
    assert seen.seen is PENDING and "may retry" in seen.waiting
    failed = job(conditions=[("Failed", "BackoffLimitExceeded", "")])
    assert observe(failed, [deleted], retries=0).observation.status == "lost"
    assert observe(job(active=0), [deleted], retries=0).seen is PENDING  # the Job decides


def test_pods_left_by_a_job_deleted_with_cascade_orphan_tell_the_end() -> None:
    done = pod(terminated(0, "Completed"), phase="Succeeded")
    seen = observe(None, [done], known=True).observation
    assert (seen.seen, seen.status, seen.exit_code) == (FINAL, "succeeded", 0)
    running = pod({"running": {"startedAt": T1}}, phase="Running")
    assert observe(None, [running], known=True).seen is RUNNING
    assert observe(None, [], known=True).seen is GONE


def test_a_pod_deleted_after_its_command_ended_tells_that_end() -> None:
    """The Job's TTL deletes a pod qwex's finalizer holds: its agent's record stands; a pod
    deleted while it ran (the agent recorded a cancel on SIGTERM) was stopped by it."""
    ended = pod(
        terminated(3, "Error", '{"status": "failed", "reason": "exit code 3", "exit_code": 3}'),
        phase="Failed",
    )
    ended.metadata.deletion_timestamp = T2
    seen = observe(job(conditions=[("Failed", "BackoffLimitExceeded", "")]), [ended]).observation
    assert (seen.status, seen.reason, seen.exit_code) == ("failed", "exit code 3", 3)
    stopped = pod(
        terminated(
            143,
            "Error",
            '{"status": "cancelled", "reason": "received SIGTERM", "exit_code": 143, '
            '"signal": "SIGTERM"}',
        ),
        phase="Failed",
    )
    stopped.metadata.deletion_timestamp = T2
    seen = observe(job(conditions=[("Failed", "BackoffLimitExceeded", "")]), [stopped]).observation
    assert (seen.status, seen.signal) == ("lost", "SIGTERM")


def test_attempts_list_each_pod_in_order_and_keep_those_gone() -> None:
    first = pod(terminated(143, "Error"), phase="Failed", name="a", created=T0)
    second = pod({"running": {"startedAt": T2}}, phase="Running", name="b", created=T1)
    noted = attempts([second, first], [], {"a": 0, "b": 7})
    assert [(a["pod"], a["exit_code"], a["log_offset"]) for a in noted] == [
        ("a", 143, 0),
        ("b", None, 7),
    ]
    assert noted[0]["reason"] == "Error" and noted[1]["reason"] == "Running"
    assert [a["pod"] for a in attempts([second], noted, {})] == ["a", "b"]


def test_a_job_being_deleted_with_no_pod_running_is_the_end() -> None:
    """A cancel deletes the Job (foreground): once its pod has stopped, the Job makes no
    other, so that is the run's end (core names the cancel's reason), not a wait for a
    Job that is going away; a pod still in its grace period is still running."""
    cancelled = terminated(
        7, "Error", '{"status": "cancelled", "reason": "received SIGTERM", "exit_code": 7}'
    )
    stopped = pod(cancelled, phase="Failed")
    stopped.metadata.deletion_timestamp = T2
    going = job(active=0)
    going.metadata.deletion_timestamp = T2
    seen = observe(going, [stopped], retries=1).observation
    assert (seen.seen, seen.status, seen.exit_code) == (FINAL, "lost", 7)
    assert "deleted" in (seen.reason or "")
    running = pod({"running": {"startedAt": T1}}, phase="Running")
    assert observe(going, [running]).seen is RUNNING
    nothing = observe(going, []).observation
    assert (nothing.seen, nothing.status) == (FINAL, "lost")
