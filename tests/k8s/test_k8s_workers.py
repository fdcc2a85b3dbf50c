"""`--nodes` and `--array` on the real cluster, through the CLI: a 2-worker all-reduce over
the rendezvous the pods are given (worker 0's DNS name under the Job's headless Service),
its output from both ranks; a failed worker stopping the other and named; a gang over its
queue's quota kept queued whole; an array of 20 never running more than 3 at once; cancel.

The collective is a socket-level stand-in for torch.distributed's all-reduce (rank 0
listens on MASTER_PORT, the others connect and exchange a sum): the offline test image
holds Python but not torch (a CPU wheel is ~200 MB per image load)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from k8s_support import PYTHON_IMAGE, Cluster, configure, wait_for
from kubernetes import client
from workers_support import ALLREDUCE, TASK, most_at_once

pytestmark = [pytest.mark.k8s, pytest.mark.live]
Qwex = Callable[..., CompletedProcess[str]]
FINAL = {"succeeded", "failed", "cancelled", "lost"}


@pytest.fixture
def k8s_project(project: Path, cluster: Cluster) -> Path:
    configure(project, cluster)
    return project


def record(qwex: Qwex, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(qwex("status", run_id, "--json", check=True).stdout)
    return out


def last_id(qwex: Qwex) -> str:
    return str(json.loads(qwex("list", "--json", check=True).stdout)[0]["id"])


def pods_of(cluster: Cluster, run_id: str) -> list[Any]:
    return list(
        cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"qwex.dev/run-id={run_id}"
        ).items
    )


def wait_status(qwex: Qwex, run_id: str, want: set[str], timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        rec = record(qwex, run_id)
        if rec["status"] in want:
            return rec
        assert time.monotonic() < deadline, f"run {run_id} stayed {rec['status']}: {rec['reason']}"
        time.sleep(0.5)


def test_two_workers_all_reduce_through_the_headless_service(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    (k8s_project / "allreduce.py").write_text(ALLREDUCE)
    result = qwex(
        "run",
        "--image",
        PYTHON_IMAGE,
        "--nodes",
        "2",
        "--",
        "python",
        "allreduce.py",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "[0] rank 0 of 2: sum 3 (node rank 0)",
        "[1] rank 1 of 2: sum 3 (node rank 1)",
    ]
    run_id = last_id(qwex)
    assert qwex("logs", "--rank", "1", run_id, check=True).stdout == (
        "rank 1 of 2: sum 3 (node rank 1)\n"
    )
    rec = record(qwex, run_id)
    rows = rec["backend_data"]["workers"]
    assert [(r["rank"], r["state"], r["exit_code"]) for r in rows] == [
        (0, "succeeded", 0),
        (1, "succeeded", 0),
    ]
    job = cluster.job(rec["backend_data"]["job"])
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == (
        "Indexed",
        2,
        2,
    )
    service: Any = cluster.core.read_namespaced_service(job.metadata.name, cluster.namespace)
    assert service.spec.cluster_ip == "None"
    assert [o.uid for o in service.metadata.owner_references] == [job.metadata.uid]


def test_a_failed_worker_stops_the_other_and_is_named(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    script = 'echo up $NODE_RANK; if [ "$NODE_RANK" = 1 ]; then sleep 2; exit 3; fi; sleep 300'
    began = time.monotonic()
    result = qwex(
        "run", "--grace-period", "2", "--nodes", "2", "--", "sh", "-c", script, timeout=240
    )
    assert time.monotonic() - began < 150  # not worker 0's 300 s
    assert result.returncode == 3, result.stderr
    rec = record(qwex, last_id(qwex))
    assert rec["status"] == "failed"
    assert rec["reason"].startswith("worker 1 failed: exit code 3 (pod qwex-"), rec["reason"]
    assert rec["reason"].endswith("the other workers were stopped")
    states = {r["rank"]: r["state"] for r in rec["backend_data"]["workers"]}
    assert states == {0: "stopped", 1: "failed"}
    assert "[0] up 0" in result.stdout and "[1] up 1" in result.stdout


def test_a_gang_over_quota_stays_queued_whole(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """The ClusterQueue holds 1 CPU: two workers of 0.6 each never fit together, though
    one would: nothing of the gang starts, and the reason is Kueue's."""
    configure(k8s_project, cluster, queue=cluster.local_queue)
    run_id = qwex(
        "run",
        "-d",
        "--no-trunc",
        "--cpu",
        "0.6",
        "--nodes",
        "2",
        "--",
        "sleep",
        "5",
        check=True,
        timeout=120,
    ).stdout.strip()
    rec = wait_status(qwex, run_id, {"queued"}, timeout=120)
    reason = wait_for(
        "Kueue's reason",
        lambda: (r := record(qwex, run_id)["reason"]) and "quota" in r and r,
        timeout=60,
    )
    assert "cpu" in reason, reason
    time.sleep(3)
    assert record(qwex, run_id)["status"] == "queued"
    assert pods_of(cluster, run_id) == []  # no half gang
    job = cluster.job(rec["backend_data"]["job"])
    assert job.spec.suspend is True
    workload = cluster.workload_of(job.metadata.name)
    assert workload is not None
    [pod_set] = workload["spec"]["podSets"]
    assert pod_set["count"] == 2  # one Workload for the whole gang
    qwex("cancel", run_id, check=True, timeout=60)
    assert wait_status(qwex, run_id, FINAL)["status"] == "cancelled"


def test_an_array_of_20_never_runs_more_than_3_at_once(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    (k8s_project / "task.py").write_text(TASK)
    result = qwex(
        "run",
        "--image",
        PYTHON_IMAGE,
        "--array",
        "0-19%3",
        "-e",
        "TASK_SECONDS=1",
        "-e",
        "FAIL=7",
        "--",
        "python",
        "task.py",
        timeout=600,
    )
    assert result.returncode == 4, result.stderr
    run_id = last_id(qwex)
    log = qwex("logs", run_id, check=True).stdout
    peak, ended = most_at_once(log)
    assert ended == set(range(20))
    assert 1 <= peak <= 3, log
    rec = record(qwex, run_id)
    assert rec["reason"].startswith("1 of 20 tasks failed (7); task 7: exit code 4"), rec
    rows = rec["backend_data"]["workers"]
    assert len(rows) == 20 and {r["state"] for r in rows} == {"succeeded", "failed"}
    assert qwex("logs", "--rank", "7", run_id, check=True).stdout.startswith("start 7 ")
    job = cluster.job(rec["backend_data"]["job"])
    assert (job.spec.completions, job.spec.parallelism) == (20, 3)


def test_cancel_stops_every_worker(k8s_project: Path, qwex: Qwex, cluster: Cluster) -> None:
    run_id = qwex(
        "run",
        "-d",
        "--no-trunc",
        "--grace-period",
        "1",
        "--nodes",
        "2",
        "--",
        "sh",
        "-c",
        "echo up; sleep 300",
        check=True,
        timeout=120,
    ).stdout.strip()
    wait_status(qwex, run_id, {"running"})
    qwex("cancel", run_id, check=True, timeout=60)
    assert wait_status(qwex, run_id, FINAL)["status"] == "cancelled"
    wait_for("the workers' pods to go", lambda: not pods_of(cluster, run_id), timeout=90)
    name = f"qwex-{run_id}"

    def service_gone() -> bool:
        try:
            cluster.core.read_namespaced_service(name, cluster.namespace)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for("the headless Service to go with its Job", service_gone, timeout=90)
