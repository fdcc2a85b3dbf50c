"""`qwex run --backend k8s` on the real cluster, through the CLI as a user types it: the
busybox-only image and the Python image with the project's script, exit codes and signals,
OOMKilled, cancel, Kueue queueing and preemption, a pod deleted from outside, logs after the
Job's TTL deletion, a missing LocalQueue, an image the node does not have, timeouts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from k8s_support import (
    KUEUE_GROUP,
    KUEUE_VERSION,
    PYTHON_IMAGE,
    Cluster,
    api_connections,
    configure,
    wait_for,
)
from kubernetes import client

pytestmark = [pytest.mark.k8s, pytest.mark.live]

Qwex = Callable[..., subprocess.CompletedProcess[str]]
FINAL = {"succeeded", "failed", "cancelled", "lost"}
NOSHELL = os.environ.get("QWEX_K8S_NOSHELL_IMAGE", "qwex-test/noshell:latest")
"""One static program, /busybox, and nothing else: no /bin/sh (.ci/build-test-images.sh)."""


@pytest.fixture
def k8s_project(project: Path, cluster: Cluster) -> Path:
    configure(project, cluster)
    return project


def record(qwex: Qwex, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(qwex("status", run_id, "--json", check=True).stdout)
    return out


def runs(qwex: Qwex) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(qwex("list", "--json", check=True).stdout)
    return out


def last_run(qwex: Qwex) -> str:
    return str(runs(qwex)[0]["id"])


def wait_status(qwex: Qwex, run_id: str, want: set[str], timeout: float = 120) -> dict[str, Any]:
    """The run's record (as `qwex status` shows it) once its status is in `want`."""
    deadline = time.monotonic() + timeout
    while True:
        rec = record(qwex, run_id)
        if rec["status"] in want:
            return rec
        assert time.monotonic() < deadline, f"run {run_id} stayed {rec['status']}: {rec['reason']}"
        time.sleep(0.3)


def started(qwex: Qwex, *args: str) -> str:
    """The id of a run started with `qwex run -d ARGS`."""
    result = qwex("run", "-d", "--no-trunc", *args, check=True, timeout=120)
    return result.stdout.strip()


def pods_of(cluster: Cluster, run_id: str) -> list[Any]:
    return list(
        cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"qwex.dev/run-id={run_id}"
        ).items
    )


def job_of(cluster: Cluster, rec: dict[str, Any]) -> Any | None:
    try:
        return cluster.job(rec["backend_data"]["job"])
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_busybox_image_exit_code_and_output(k8s_project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--", "sh", "-c", "echo hello from busybox; exit 3", timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hello from busybox\n"
    assert "failed: exit code 3" in result.stderr


def test_python_image_runs_the_projects_script(k8s_project: Path, qwex: Qwex) -> None:
    """The seed's example: the project's script reaches the pod in a snapshot."""
    (k8s_project / "script.py").write_text("import data\nprint('script says', data.VALUE)\n")
    (k8s_project / "data.py").write_text("VALUE = 42\n")
    result = qwex(
        "run", "--backend", "k8s", "--image", PYTHON_IMAGE, "python script.py", timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "script says 42\n"


def test_a_signal_is_128_plus_n(k8s_project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--", "sh", "-c", "kill -TERM $$", timeout=120)
    assert result.returncode == 143
    assert "killed by SIGTERM" in result.stderr


def test_oom_killed(k8s_project: Path, qwex: Qwex) -> None:
    result = qwex(
        "run",
        "--image",
        PYTHON_IMAGE,
        "--memory",
        "48Mi",
        "--",
        "python",
        "-c",
        "b = [bytearray(1 << 20) for _ in range(400)]",
        timeout=120,
    )
    assert result.returncode == 137
    run_id = last_run(qwex)
    rec = record(qwex, run_id)
    assert rec["status"] == "failed"
    assert rec["reason"].startswith("OOMKilled")


def test_cancel_deletes_the_job_and_leaves_no_pod(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    run_id = started(qwex, "--grace-period", "2", "--", "sh", "-c", "echo up; sleep 300")
    wait_status(qwex, run_id, {"running"})
    qwex("cancel", run_id, check=True, timeout=60)
    rec = wait_status(qwex, run_id, FINAL)
    assert (rec["status"], rec["reason"]) == ("cancelled", "cancelled by user")
    wait_for("the run's pods to be gone", lambda: not pods_of(cluster, run_id), timeout=60)
    # Foreground deletion removes the Job itself once the garbage collector has seen its
    # pods go: a moment after them, not at once.
    wait_for("the run's Job to be gone", lambda: job_of(cluster, rec) is None, timeout=60)


def test_queued_behind_a_full_cluster_queue_then_admitted(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    quota = cluster.cluster_queue_quota("cpu")
    queue = ("--queue", cluster.local_queue, "--cpu", quota)
    ids: list[str] = []
    try:
        blocker = started(qwex, *queue, "--", "sh", "-c", "sleep 300")
        ids.append(blocker)
        wait_status(qwex, blocker, {"running"})
        waiting = started(qwex, *queue, "--", "sh", "-c", "echo admitted")
        ids.append(waiting)
        rec = wait_status(qwex, waiting, {"queued"})
        assert "insufficient unused quota" in rec["reason"]  # Kueue's own words
        behind = started(qwex, *queue, "--", "sh", "-c", "echo second")
        ids.append(behind)
        # Kueue's visibility API: where each waits in the queue, the later one behind.
        where = re.compile(r"\((\d+) of (\d+) waiting in LocalQueue (\S+?)[,)]")

        def positions() -> tuple[Any, ...] | None:
            found = [where.search(record(qwex, i)["reason"]) for i in (waiting, behind)]
            return tuple(m.groups() for m in found if m) if all(found) else None

        wait_for("positions in the queue", lambda: positions() is not None, timeout=60)
        first, second = positions() or ()
        assert int(second[0]) > int(first[0]) and first[2] == second[2] == cluster.local_queue
        shown = qwex("status", behind, check=True).stdout
        assert f"{second[0]} of {second[1]} waiting in LocalQueue" in shown, shown
        # the same from one listing of the namespace (`qwex list`, status of several)
        listed = {r["id"]: r for r in runs(qwex)}
        several = json.loads(qwex("status", "--json", waiting, behind, check=True).stdout)
        for rec in (listed[behind], several[1]):
            assert rec["status"] == "queued", rec
            assert f"{second[0]} of {second[1]} waiting in LocalQueue" in rec["reason"], rec
        assert listed[blocker]["status"] == "running" and several[0]["status"] == "queued"
        qwex("cancel", behind, check=True, timeout=60)
        qwex("cancel", blocker, check=True, timeout=60)
        rec = wait_status(qwex, waiting, FINAL, timeout=180)
        assert rec["status"] == "succeeded", rec["reason"]
        seen = [t["status"] for t in rec["history"]]
        assert seen.index("queued") < seen.index("running") < seen.index("succeeded")
        assert qwex("logs", waiting, check=True).stdout == "admitted\n"
    finally:
        for run_id in ids:  # a failure above must not leave the quota held for the next test
            qwex("cancel", run_id, timeout=60)


@pytest.fixture
def preempting_queue(cluster: Cluster) -> Iterator[str]:
    """A LocalQueue whose ClusterQueue preempts lower priorities, with two priority classes."""
    name = cluster.name("qwex-preempt")
    custom = cluster.custom
    classes = {f"{name}-low": 100, f"{name}-high": 1000}
    for cls, value in classes.items():
        custom.create_cluster_custom_object(
            KUEUE_GROUP,
            KUEUE_VERSION,
            "workloadpriorityclasses",
            {
                "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
                "kind": "WorkloadPriorityClass",
                "metadata": {"name": cls},
                "value": value,
            },
        )
    custom.create_cluster_custom_object(
        KUEUE_GROUP,
        KUEUE_VERSION,
        "clusterqueues",
        {
            "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
            "kind": "ClusterQueue",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {},
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": "qwex-flavor",
                                "resources": [
                                    {"name": "cpu", "nominalQuota": "1"},
                                    {"name": "memory", "nominalQuota": "1Gi"},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
    )
    custom.create_namespaced_custom_object(
        KUEUE_GROUP,
        KUEUE_VERSION,
        cluster.namespace,
        "localqueues",
        {
            "apiVersion": f"{KUEUE_GROUP}/{KUEUE_VERSION}",
            "kind": "LocalQueue",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": {"clusterQueue": name},
        },
    )
    try:
        yield name
    finally:
        custom.delete_namespaced_custom_object(
            KUEUE_GROUP, KUEUE_VERSION, cluster.namespace, "localqueues", name
        )
        custom.delete_cluster_custom_object(KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", name)
        for cls in classes:
            custom.delete_cluster_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, "workloadpriorityclasses", cls
            )


def test_preempted_by_a_higher_priority_then_readmitted(
    k8s_project: Path, qwex: Qwex, cluster: Cluster, preempting_queue: str
) -> None:
    queue = preempting_queue

    def run_at(priority: str, script: str) -> str:
        configure(k8s_project, cluster, priority_class=f"{queue}-{priority}")
        return started(qwex, "--queue", queue, "--cpu", "1", "--", "sh", "-c", script)

    configure(k8s_project, cluster, priority_class=f"{queue}-low")
    low = subprocess.Popen(  # its user follows it: `qwex run` in the foreground
        [
            *(str(Path(sys.executable).parent / "qwex"), "run", "--queue", queue, "--cpu", "1"),
            *("--", "sh", "-c", "echo low; sleep 300"),
        ],
        cwd=k8s_project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    low_id = wait_for("the low run", lambda: last_run(qwex) if runs(qwex) else None, timeout=60)
    wait_status(qwex, low_id, {"running"})
    high = run_at("high", "echo high")
    rec = wait_status(qwex, high, FINAL, timeout=180)
    assert rec["status"] == "succeeded", rec["reason"]

    def readmitted() -> list[tuple[str, str]] | None:
        history = record(qwex, low_id)["history"]
        phases = [(t["status"], t.get("reason") or "") for t in history]
        return phases if [s for s, _ in phases][-3:] == ["running", "queued", "running"] else None

    phases = wait_for("the low run to run again", readmitted, timeout=180)
    assert phases[-2][1].startswith(("Preempted", "Evicted")), phases
    qwex("cancel", low_id, check=True, timeout=60)
    out, _ = low.communicate(timeout=120)
    assert out.startswith("low\n")  # the first pod's output, then the second's
    assert record(qwex, low_id)["status"] == "cancelled"


def test_a_pod_deleted_from_outside_is_lost(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    run_id = started(qwex, "--", "sh", "-c", "echo up; sleep 300")
    wait_status(qwex, run_id, {"running"})
    for pod in pods_of(cluster, run_id):
        cluster.core.delete_namespaced_pod(
            pod.metadata.name, cluster.namespace, grace_period_seconds=0
        )
    rec = wait_status(qwex, run_id, FINAL)
    assert rec["status"] == "lost"
    assert "deleted" in rec["reason"] or "gone" in rec["reason"]
    assert qwex("logs", run_id, check=True).stdout == "up\n"


def test_logs_and_status_outlive_the_jobs_ttl(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(k8s_project, cluster, ttl_seconds_after_finished=2)
    result = qwex("run", "--", "sh", "-c", "echo one; echo two", timeout=120)
    assert result.returncode == 0, result.stderr
    run_id = last_run(qwex)
    rec = record(qwex, run_id)
    wait_for("the TTL to delete the Job", lambda: job_of(cluster, rec) is None, timeout=60)
    assert qwex("logs", run_id, check=True).stdout == "one\ntwo\n"
    after = record(qwex, run_id)
    assert (after["status"], after["exit_code"]) == ("succeeded", 0)


def test_logs_follow_resumes_without_duplicates(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """A follower killed mid-stream (its connection dropped) and a new one: every line
    once, in order. (20 s of output: on a loaded node a pod's status says `running`
    seconds after its command started, and the first follower needs its own seconds.)"""
    run_id = started(
        qwex,
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 80 ]; do echo line $i; i=$((i+1)); sleep 0.25; done",
    )
    wait_status(qwex, run_id, {"running"})
    qwex_bin = str(Path(sys.executable).parent / "qwex")
    first = subprocess.Popen(
        [qwex_bin, "logs", "-f", run_id], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert first.stdout is not None
    # Killed once it has streamed its first line, while the run is still writing: the
    # second follower then really resumes a stream another one was cut off in.
    assert first.stdout.readline() == "line 0\n"
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert record(qwex, run_id)["status"] == "running", "the run ended before the follower died"
    second = qwex("logs", "-f", run_id, timeout=120)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "".join(f"line {i}\n" for i in range(80))


def test_a_missing_local_queue_is_named_with_the_ones_that_exist(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    result = qwex("run", "--queue", "no-such-queue", "--", "true", timeout=60)
    assert result.returncode != 0
    assert "no Kueue LocalQueue 'no-such-queue'" in result.stderr
    assert cluster.local_queue in result.stderr
    assert "Traceback" not in result.stderr
    assert runs(qwex) == []  # nothing was created


def test_an_image_the_node_does_not_have(k8s_project: Path, qwex: Qwex, cluster: Cluster) -> None:
    image = "qwex-test/no-such-image:0"
    result = qwex("run", "--image", image, "--", "true", timeout=180)
    assert result.returncode != 0
    run_id = last_run(qwex)
    rec = record(qwex, run_id)
    assert rec["status"] == "failed"
    assert rec["reason"].startswith(f"ImagePullBackOff: docker.io/{image}") or rec[
        "reason"
    ].startswith(f"ImagePullBackOff: {image}")
    wait_for("the stuck Job to be deleted", lambda: job_of(cluster, rec) is None, timeout=60)


def test_a_timeout_is_deadline_exceeded(k8s_project: Path, qwex: Qwex, cluster: Cluster) -> None:
    configure(k8s_project, cluster, timeout=3)
    result = qwex("run", "--", "sh", "-c", "sleep 60", timeout=120)
    assert result.returncode != 0
    rec = record(qwex, last_run(qwex))
    assert (rec["status"], rec["reason"].split(":")[0]) == ("failed", "DeadlineExceeded")


def test_an_unschedulable_pod_fails_with_the_schedulers_words(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(
        k8s_project, cluster, node_selector={"qwex.dev/no-such-pool": "x"}, schedule_timeout=2
    )
    result = qwex("run", "--", "true", timeout=120)
    assert result.returncode != 0
    rec = record(qwex, last_run(qwex))
    assert rec["status"] == "failed"
    assert rec["reason"].startswith("Unschedulable: 0/1 nodes are available")


def test_a_snapshot_over_the_limit_fails_before_anything_exists(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(k8s_project, cluster, snapshot_limit=50_000)
    (k8s_project / "weights.bin").write_bytes(os.urandom(200_000))
    result = qwex("run", "--", "true", timeout=60)
    assert result.returncode != 0
    assert "weights.bin" in result.stderr and "Traceback" not in result.stderr
    assert runs(qwex) == []


def test_gc_deletes_the_jobs_of_final_runs(k8s_project: Path, qwex: Qwex, cluster: Cluster) -> None:
    result = qwex("run", "--", "true", timeout=120)
    assert result.returncode == 0, result.stderr
    rec = record(qwex, last_run(qwex))
    job = rec["backend_data"]["job"]
    dry = qwex("gc", "--dry-run", check=True)
    assert f"would remove job {job}" in dry.stdout and "its run is succeeded" in dry.stdout
    assert job_of(cluster, rec) is not None
    qwex("gc", "--force", check=True)
    wait_for("gc to delete the Job", lambda: job_of(cluster, rec) is None, timeout=30)


def test_an_unknown_priority_class_is_refused(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(k8s_project, cluster, priority_class="qwex-no-such-priority")
    result = qwex("run", "--queue", cluster.local_queue, "--", "true", timeout=60)
    assert result.returncode != 0
    assert "no Kueue WorkloadPriorityClass 'qwex-no-such-priority'" in result.stderr
    assert runs(qwex) == []


def test_a_priority_class_without_a_queue_is_refused_not_ignored(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(k8s_project, cluster, priority_class="qwex-some-priority")
    result = qwex("run", "--", "true", timeout=60)
    assert result.returncode == 1
    assert "priority_class 'qwex-some-priority'" in result.stderr and "--queue" in result.stderr
    assert "Traceback" not in result.stderr and runs(qwex) == []


def test_status_of_a_run_without_a_queue_shows_no_none(k8s_project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--", "true", timeout=120)
    assert result.returncode == 0, result.stderr
    shown = qwex("status", last_run(qwex), check=True).stdout
    assert "None" not in shown and "job " in shown


TRAP = "trap 'echo got TERM; sleep 1; echo cleanup done; exit 7' TERM; echo up; sleep 300 & wait"


def test_cancel_keeps_the_output_and_exit_code_of_a_sigterm_trap(
    k8s_project: Path, qwex: Qwex
) -> None:
    """What the command prints in its grace period is the run's output, as locally."""
    run_id = started(qwex, "--grace-period", "20", "--", "sh", "-c", TRAP)
    wait_status(qwex, run_id, {"running"})
    wait_for("the first line", lambda: qwex("logs", run_id, check=True).stdout == "up\n")
    qwex("cancel", run_id, check=True, timeout=60)
    rec = wait_status(qwex, run_id, FINAL)
    assert rec["status"] == "cancelled" and rec["exit_code"] == 7, rec
    assert qwex("logs", run_id, check=True).stdout == "up\ngot TERM\ncleanup done\n"


def test_a_timeout_keeps_the_output_of_a_sigterm_trap(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    configure(k8s_project, cluster, timeout=5)
    result = qwex("run", "--grace-period", "20", "--", "sh", "-c", TRAP, timeout=120)
    assert result.returncode == 7, result.stderr
    assert result.stdout == "up\ngot TERM\ncleanup done\n"
    rec = record(qwex, last_run(qwex))
    assert (rec["status"], rec["reason"].split(":")[0]) == ("failed", "DeadlineExceeded")


def test_the_job_carries_the_runs_name_and_labels(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    name = f"train-{os.getpid()}"
    run_id = started(qwex, "--name", name, "-l", "team=nlp", "--", "true")
    wait_status(qwex, run_id, FINAL)
    jobs = cluster.batch.list_namespaced_job(
        cluster.namespace, label_selector=f"team=nlp,qwex.dev/name={name}"
    ).items
    labels = [j.metadata.labels for j in jobs if j.metadata and j.metadata.labels]
    assert [each["qwex.dev/run-id"] for each in labels] == [run_id]
    assert [p.metadata.labels["team"] for p in pods_of(cluster, run_id)] == ["nlp"]


def test_priority_flag_names_the_workload_priority_class(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    queued = ("--queue", cluster.local_queue, "--priority", "qwex-no-such-priority")
    result = qwex("run", *queued, "--", "true", timeout=60)
    assert result.returncode == 1
    assert "no Kueue WorkloadPriorityClass 'qwex-no-such-priority'" in result.stderr
    alone = qwex("run", "--priority", "qwex-no-such-priority", "--", "true", timeout=60)
    assert alone.returncode == 1 and "--queue" in alone.stderr


def test_with_retries_a_deleted_pod_is_an_attempt_and_the_run_ends_with_the_job(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """A watcher sees the deleted pod end (its SIGTERM trap takes a second): with retries
    left, that is an attempt, not the run's end (it used to be `lost`, exit code 143)."""
    configure(k8s_project, cluster, retries=1)
    script = "trap 'sleep 1; exit 143' TERM; echo attempt; sleep 8 & wait; echo done"
    run_id = started(qwex, "--grace-period", "5", "--", "sh", "-c", script)
    wait_status(qwex, run_id, {"running"})
    wait_for("the first line", lambda: qwex("logs", run_id, check=True).stdout == "attempt\n")
    waiter = subprocess.Popen(
        [str(Path(sys.executable).parent / "qwex"), "wait", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The waiter watches the Job and its pods (two watches: two connections) before the
    # pod goes, so the path under test, a watch seeing the pod end, is the one taken.
    wait_for("the waiter's watches", lambda: api_connections(waiter.pid) >= 2, timeout=60)
    for pod in pods_of(cluster, run_id):
        cluster.core.delete_namespaced_pod(pod.metadata.name, cluster.namespace)
    out, err = waiter.communicate(timeout=180)
    assert waiter.returncode == 0, out + err
    rec = record(qwex, run_id)
    assert (rec["status"], rec["exit_code"]) == ("succeeded", 0)
    logs = qwex("logs", run_id, check=True).stdout
    assert logs.startswith("attempt\n") and logs.endswith("attempt\ndone\n"), logs
    first, second = rec["backend_data"]["attempts"]  # each attempt: its pod, its end
    assert first["pod"] != second["pod"] and (first["exit_code"], second["exit_code"]) == (143, 0)
    assert first["log_offset"] == 0 and second["log_offset"] == len(logs) - len("attempt\ndone\n")
    shown = qwex("status", run_id, check=True).stdout
    assert re.search(rf"attempt 1 .*pod {first['pod']},", shown), shown
    assert re.search(rf"attempt 2 .*pod {second['pod']},", shown), shown


def test_a_job_deleted_with_cascade_orphan_ends_as_its_pod_did(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`kubectl delete job --cascade=orphan`: the pod runs to completion; so does the run."""
    run_id = started(qwex, "--", "sh", "-c", "echo a; sleep 5; echo b")
    rec = wait_status(qwex, run_id, {"running"})
    cluster.batch.delete_namespaced_job(
        rec["backend_data"]["job"], cluster.namespace, propagation_policy="Orphan"
    )
    rec = wait_status(qwex, run_id, FINAL, timeout=120)
    assert (rec["status"], rec["exit_code"]) == ("succeeded", 0), rec
    assert qwex("logs", run_id, check=True).stdout == "a\nb\n"
    for pod in pods_of(cluster, run_id):
        cluster.core.delete_namespaced_pod(pod.metadata.name, cluster.namespace)


def test_an_unwatched_run_past_its_jobs_ttl_ends_as_the_agent_recorded(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`qwex run -d` and nobody looks until the Job's TTL has passed: the pod is kept
    (qwex's finalizer) until its end is recorded, then goes."""
    configure(k8s_project, cluster, ttl_seconds_after_finished=1)
    run_id = started(qwex, "--", "sh", "-c", "echo hi; exit 3")
    name = f"qwex-{run_id}"
    cluster.created.append(name)

    def ttl_passed() -> bool:
        try:
            return cluster.job(name).metadata.deletion_timestamp is not None
        except client.ApiException as exc:
            return bool(exc.status == 404)

    wait_for("the Job's TTL to pass", ttl_passed, timeout=120)
    rec = record(qwex, run_id)
    assert (rec["status"], rec["exit_code"]) == ("failed", 3), rec
    # The log is there, or the reason says it could not be had (the node removes the
    # containers of a deleted pod): never a silent gap.
    if qwex("logs", run_id, check=True).stdout == "hi\n":
        assert rec["reason"] == "exit code 3"
    else:
        assert rec["reason"].startswith("exit code 3 (qwex could not copy its pod's log"), rec
    wait_for("the pod to go once recorded", lambda: not pods_of(cluster, run_id), timeout=60)
    wait_for("the Job to go", lambda: job_of(cluster, rec) is None, timeout=60)


def test_ctrl_c_on_a_foreground_run_exits_130_as_locally(k8s_project: Path, qwex: Qwex) -> None:
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "qwex"), "run", "--", "sh", "-c", "echo up; sleep 300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "up\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert record(qwex, last_run(qwex))["status"] == "cancelled"


def test_dry_run_prints_the_manifest_and_creates_nothing(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    import yaml

    result = qwex("run", "--dry-run", "-l", "team=nlp", "--", "python", "train.py", timeout=60)
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    job = docs[-1]
    assert job["metadata"]["namespace"] == cluster.namespace
    assert job["metadata"]["labels"]["team"] == "nlp"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-2:] == [
        "python",
        "train.py",
    ]
    assert runs(qwex) == []
    assert (
        cluster.batch.list_namespaced_job(
            cluster.namespace,
            label_selector=f"qwex.dev/run-id={job['metadata']['labels']['qwex.dev/run-id']}",
        ).items
        == []
    )


def test_a_run_that_can_never_fit_its_cluster_queue_says_so(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    run_id = started(qwex, "--queue", cluster.local_queue, "--cpu", "64", "--", "true")
    rec = wait_status(qwex, run_id, {"queued"})
    wait_for(
        "Kueue's verdict",
        lambda: "can never be admitted" in record(qwex, run_id)["reason"],
        timeout=60,
    )
    assert "maximum capacity" in record(qwex, run_id)["reason"]
    qwex("cancel", run_id, check=True, timeout=60)
    assert wait_status(qwex, run_id, FINAL)["status"] == "cancelled", rec


def test_a_commands_own_exit_code_125_is_retried_like_any_failure(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """125 is the agent's own 'cannot run the command' (the Job fails at once); the
    command's 125 is recorded as 125 and retried as any failure is."""
    configure(k8s_project, cluster, retries=1)
    result = qwex("run", "--", "sh", "-c", "exit 125", timeout=180)
    assert result.returncode == 125, result.stderr
    rec = record(qwex, last_run(qwex))
    assert (rec["status"], rec["exit_code"]) == ("failed", 125)
    assert len(rec["backend_data"]["attempts"]) == 2, rec["backend_data"]


def test_a_kubelet_error_in_place_of_the_log_never_lands_in_it(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """The node lost the container's log file before any qwex process copied it (a
    container being removed, a disk cleaned): the kubelet answers 200 with its error as the
    body (`failed to try resolving symlinks in path ...`, `unable to retrieve container logs
    for ...`). That text is not the command's output: the log stays empty and the reason
    says the log could not be copied."""
    run_id = started(qwex, "--", "sh", "-c", "echo hi")
    wait_for(
        "the pod to finish",
        lambda: any(p.status.phase == "Succeeded" for p in pods_of(cluster, run_id)),
        timeout=120,
    )
    pod = pods_of(cluster, run_id)[0]
    folder = Path("/var/log/pods") / f"{cluster.namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    assert folder.is_dir(), f"the node keeps pod logs elsewhere than {folder}"
    for log in folder.glob("main/*.log"):
        log.unlink()
    rec = wait_status(qwex, run_id, FINAL)
    out = qwex("logs", run_id, check=True).stdout
    assert out == "", out
    assert rec["status"] == "succeeded", rec
    assert "could not copy its pod's log" in rec["reason"], rec


def test_an_image_without_a_shell_runs_in_the_sub_folder_it_was_started_from(
    k8s_project: Path, qwex: Qwex
) -> None:
    """An image FROM scratch with one program has no /bin/sh to `cd` with: the agent itself
    starts the command in the project's sub-folder the user ran `qwex run` from."""
    (k8s_project / "sub").mkdir()
    (k8s_project / "sub" / "data.txt").write_text("in sub\n")
    result = qwex(
        "run",
        "--image",
        NOSHELL,
        "--",
        "/busybox",
        "sh",
        "-c",
        "pwd; cat data.txt",
        cwd=k8s_project / "sub",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2].endswith("/sub") and lines[-1] == "in sub", result.stdout


def test_logs_keep_the_kubelets_order_and_times(k8s_project: Path, qwex: Qwex) -> None:
    """Issue 18.3 on Kubernetes: the API merges stdout and stderr in the kubelet's order
    (all of it lands on stdout); `-t` prints the kubelet's time of each line, `--since` and
    `--tail` choose lines by them."""
    script = "echo 1; sleep .1; echo 2 >&2; sleep .1; echo 3; sleep .1; echo 4 >&2"
    result = qwex("run", "--", "sh", "-c", script, timeout=120)
    assert result.returncode == 0, result.stderr
    run_id = last_run(qwex)
    assert qwex("logs", run_id, check=True).stdout == "1\n2\n3\n4\n"
    assert qwex("logs", "--tail", "2", run_id, check=True).stdout == "3\n4\n"
    stamped = qwex("logs", "-t", run_id, check=True)
    assert stamped.stderr == ""
    lines = stamped.stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["1", "2", "3", "4"]
    stamps = [line.split(" ", 1)[0] for line in lines]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", s) for s in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == 4  # the kubelet's, 0.1 s apart
    rec = record(qwex, run_id)
    assert rec["started_at"][:10] == stamps[0][:10]
    assert qwex("logs", "--since", stamps[2], run_id, check=True).stdout == "3\n4\n"


def test_listing_many_live_runs_costs_one_request_per_kind(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`qwex list` brings every live run up to date from one list of Jobs, one of pods and
    one of Workloads in the namespace, not three requests per run: its requests do not
    grow with the number of live runs."""
    ids = [started(qwex, "--", "sleep", "120") for _ in range(4)]
    try:
        for run_id in ids:
            wait_status(qwex, run_id, {"running"})

        def requests() -> list[str]:
            result = qwex("list", "--json", env={"QWEX_K8S_TRACE": "1"}, check=True)
            assert {r["id"] for r in json.loads(result.stdout)} >= set(ids)
            return [line for line in result.stderr.splitlines() if line.startswith("qwex-k8s: ")]

        four = requests()
        ids += [started(qwex, "--", "sleep", "120") for _ in range(4)]
        for run_id in ids[4:]:
            wait_status(qwex, run_id, {"running"})
        eight = requests()
        assert len(eight) == len(four) <= 4, "\n".join(eight)
    finally:
        for run_id in ids:
            qwex("cancel", run_id, timeout=60)


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a command run with `PYTHONPROFILEIMPORTTIME=1` imported."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }


def traced(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The API requests `QWEX_K8S_TRACE=1` printed."""
    return [line for line in result.stderr.splitlines() if line.startswith("qwex-k8s: ")]


def test_status_of_several_live_runs_costs_one_request_per_kind(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`qwex status A B ...` brings its live runs up to date from one list each of Jobs,
    pods and Workloads, as `qwex list` does: its requests do not grow with the runs."""
    ids = [started(qwex, "--", "sleep", "120") for _ in range(4)]
    try:
        for run_id in ids:
            wait_status(qwex, run_id, {"running"})

        def status(*run_ids: str) -> list[str]:
            result = qwex("status", "--json", *run_ids, env={"QWEX_K8S_TRACE": "1"}, check=True)
            shown = json.loads(result.stdout)
            assert [r["id"] for r in shown] == list(run_ids)
            assert {r["status"] for r in shown} == {"running"}, shown
            return traced(result)

        two, four = status(*ids[:2]), status(*ids)
        assert len(four) == len(two) <= 4, "\n".join(four)
        listed = qwex("list", env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
        assert not [m for m in imported(listed) if m.split(".")[0] == "kubernetes"]
    finally:
        for run_id in ids:
            qwex("cancel", run_id, timeout=60)


def test_waiting_for_many_runs_asks_for_each_only_at_its_end(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`qwex wait` of several runs looks at them together, one list per kind a round, not
    following each in turn (a watch of its Job, pods and Workload and its log stream): what
    it asks of one run does not grow with how long it waits, and it prints each exit code
    in the order asked."""
    ids = [
        started(qwex, "--", "sh", "-c", f"sleep {s}; exit {code}")
        for s, code in [(8, 3), (4, 0), (6, 0)]
    ]
    result = qwex("wait", *ids, env={"QWEX_K8S_TRACE": "1"}, timeout=180)
    assert (result.returncode, result.stdout) == (3, "3\n0\n0\n"), result.stderr
    requests = traced(result)
    assert not [line for line in requests if "watch=" in line], "\n".join(requests)
    for run_id in ids:
        own = [line for line in requests if run_id in line]
        assert len(own) <= 6, "\n".join(own)


def test_a_detached_run_is_sent_without_importing_the_kubernetes_client(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`qwex run -d` with a kubeconfig of plain credentials (the test cluster's) sends its
    requests without the kubernetes client, whose import costs more than they do (issue
    21): no `kubernetes` module is imported, and the run it sends runs. A new snapshot's
    ConfigMap is made after the Job (which waits for it); an unchanged project is two
    requests, the Job and owning the ConfigMap, its snapshot not sent again."""
    content = f"{os.getpid()}-{time.time()}\n"
    (k8s_project / "data.txt").write_text(content)

    def submit() -> tuple[str, list[str]]:
        result = qwex(
            "run",
            "-d",
            "--no-trunc",
            "--",
            "cat",
            "data.txt",
            env={"PYTHONPROFILEIMPORTTIME": "1", "QWEX_K8S_TRACE": "1"},
            check=True,
            timeout=120,
        )
        modules = imported(result)
        assert "qwex_k8s.client" in modules, sorted(modules)[:20]  # the profile was printed
        assert not {m for m in modules if m.split(".")[0] == "kubernetes"}
        kinds = []  # `POST jobs`: each request's method and the kind of object it names
        for line in traced(result):
            method, url = line.split()[1:3]
            parts = url.split("?")[0].split("/")
            kinds.append(f"{method} {parts[parts.index('namespaces') + 2]}")
        return result.stdout.strip(), kinds

    first, kinds = submit()
    assert kinds == ["POST jobs", "PATCH configmaps", "POST configmaps"], kinds
    second, kinds = submit()
    assert kinds == ["POST jobs", "PATCH configmaps"], kinds
    for run_id in (first, second):
        assert wait_status(qwex, run_id, FINAL)["status"] == "succeeded"
        assert qwex("logs", run_id, check=True).stdout == content
