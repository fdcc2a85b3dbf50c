"""Smoke tests of the Kubernetes cluster itself (plain objects, no qwex code).

They prove the test cluster (or the QWEX_K8S_KUBECONFIG one) can do what qwex's Kubernetes
backend relies on: run a Job in an image holding only busybox and read its logs, init
containers and emptyDir volumes, Kueue admission and queueing for quota, and OOM kills.
"""

from __future__ import annotations

from typing import Any

import pytest
from k8s_support import QUEUE_LABEL, Cluster, condition, millicores, wait_for
from kubernetes.stream import stream

pytestmark = [pytest.mark.k8s, pytest.mark.live]


def container(
    image: str,
    script: str,
    name: str = "main",
    cpu: str = "50m",
    memory: str = "64Mi",
    mounts: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",  # the test images exist only on the node
        "command": ["/bin/sh", "-c", script],
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        "volumeMounts": mounts or [],
    }


def job(
    name: str,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    queue: str | None = None,
) -> dict[str, Any]:
    labels = {QUEUE_LABEL: queue} if queue else {}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            # Kueue unsuspends a queued Job once it admits it (no webhook needed).
            "suspend": bool(queue),
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "initContainers": init or [],
                    "containers": containers,
                    "volumes": volumes or [],
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                }
            },
        },
    }


def succeeded(cluster: Cluster, name: str) -> bool:
    status = cluster.job(name).status
    if status.failed:
        pods = [(p.metadata.name, p.status.phase) for p in cluster.job_pods(name)]
        raise AssertionError(f"Job {name} failed: {status.conditions}; pods {pods}")
    return bool(status.succeeded)


def logs(cluster: Cluster, job_name: str) -> str:
    (pod,) = cluster.job_pods(job_name)
    text: str = cluster.core.read_namespaced_pod_log(pod.metadata.name, cluster.namespace)
    return text


def test_job_in_busybox_only_image_succeeds_and_its_logs_are_readable(cluster: Cluster) -> None:
    name = cluster.create_job(
        job(cluster.name("smoke"), [container(cluster.busybox, "echo hello from $(uname -s)")])
    )
    wait_for(f"Job {name} to succeed", lambda: succeeded(cluster, name))
    assert logs(cluster, name) == "hello from Linux\n"


def test_init_container_writes_into_empty_dir_read_by_main_container(cluster: Cluster) -> None:
    mount = [{"name": "shared", "mountPath": "/shared"}]
    name = cluster.create_job(
        job(
            cluster.name("init"),
            init=[container(cluster.busybox, "echo prepared > /shared/note", "prep", mounts=mount)],
            containers=[container(cluster.busybox, "cat /shared/note", mounts=mount)],
            volumes=[{"name": "shared", "emptyDir": {}}],
        )
    )
    wait_for(f"Job {name} to succeed", lambda: succeeded(cluster, name))
    assert logs(cluster, name) == "prepared\n"


def test_kueue_admits_a_suspended_queued_job_and_it_runs(cluster: Cluster) -> None:
    name = cluster.create_job(
        job(
            cluster.name("queued"),
            [container(cluster.busybox, "echo admitted")],
            queue=cluster.local_queue,
        )
    )
    wait_for(f"Job {name} to be admitted by Kueue and succeed", lambda: succeeded(cluster, name))
    assert cluster.job(name).spec.suspend is False
    workload = cluster.workload_of(name)
    assert workload is not None, f"Kueue made no Workload for Job {name}"
    assert (condition(workload, "Admitted") or {}).get("status") == "True"
    assert logs(cluster, name) == "admitted\n"


def test_job_over_the_quota_waits_for_the_first_to_finish(cluster: Cluster) -> None:
    # Each Job asks for 60% of the queue's CPU quota: the second cannot fit beside the first.
    cpu = f"{millicores(cluster.cluster_queue_quota('cpu')) * 6 // 10}m"
    mount = [{"name": "signal", "mountPath": "/signal"}]
    first = cluster.create_job(
        job(
            cluster.name("first"),
            # Runs until the test releases it: no timing is assumed.
            [
                container(
                    cluster.busybox,
                    "until [ -e /signal/go ]; do sleep 0.2; done",
                    cpu=cpu,
                    mounts=mount,
                )
            ],
            volumes=[{"name": "signal", "emptyDir": {}}],
            queue=cluster.local_queue,
        )
    )
    pod = wait_for(
        f"the pod of {first} to run",
        lambda: next((p for p in cluster.job_pods(first) if p.status.phase == "Running"), None),
    )
    second = cluster.create_job(
        job(
            cluster.name("second"),
            [container(cluster.busybox, "echo second ran", cpu=cpu)],
            queue=cluster.local_queue,
        )
    )

    def pending() -> dict[str, Any] | None:
        wl = cluster.workload_of(second)
        cond = condition(wl, "QuotaReserved") if wl else None
        return cond if cond and cond.get("status") == "False" else None

    reserved = wait_for(f"Kueue to record that {second} does not fit", pending)
    assert reserved["reason"] == "Pending", reserved
    assert "insufficient unused quota for cpu" in reserved["message"], reserved
    assert cluster.job(second).spec.suspend is True
    assert cluster.job_pods(second) == []

    stream(
        cluster.core.connect_get_namespaced_pod_exec,
        pod.metadata.name,
        cluster.namespace,
        command=["touch", "/signal/go"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    wait_for(f"Job {first} to succeed once released", lambda: succeeded(cluster, first))
    wait_for(f"Job {second} to be admitted and succeed", lambda: succeeded(cluster, second))
    assert logs(cluster, second) == "second ran\n"


def test_container_over_its_memory_limit_ends_oom_killed(cluster: Cluster) -> None:
    # dd's 64 MiB block buffer alone is twice the 32 MiB limit.
    hog = "dd if=/dev/zero of=/dev/null bs=64M count=1"
    name = cluster.create_job(
        job(cluster.name("oom"), [container(cluster.busybox, hog, memory="32Mi")])
    )

    def terminated() -> Any:
        for pod in cluster.job_pods(name):
            for status in pod.status.container_statuses or []:
                if status.state.terminated:
                    return status.state.terminated
        return None

    state = wait_for(f"the container of {name} to end", terminated)
    assert state.reason == "OOMKilled", f"ended {state.reason} with exit code {state.exit_code}"
    assert state.exit_code == 137
