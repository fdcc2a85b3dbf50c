"""`qwex gc` on the real cluster, in a namespace shared with others: it removes only what
is provably this machine's project's and over, and finds pods left without their Job."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_support import Cluster, body, configure, wait_for
from kubernetes import client

pytestmark = [pytest.mark.k8s, pytest.mark.live]

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def start(qwex: Qwex, project: Path, *command: str) -> dict[str, Any]:
    run_id = qwex("run", "-d", "--", *command, cwd=project, check=True, timeout=120).stdout
    out: dict[str, Any] = json.loads(
        qwex("status", run_id.strip(), "--json", cwd=project, check=True).stdout
    )
    return out


def job(cluster: Cluster, name: str) -> Any | None:
    try:
        return cluster.job(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def pod_phases(cluster: Cluster, run_id: str) -> list[str]:
    pods = cluster.core.list_namespaced_pod(
        cluster.namespace, label_selector=f"qwex.dev/run-id={run_id}"
    ).items
    return [str(p.status.phase if p.status else None) for p in pods]


def test_gc_never_removes_a_running_job_whose_project_moved(
    project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """The project folder is moved while its run goes on: the run folder the Job names is
    missing here, the host name is the same, and still the Job is not garbage."""
    configure(project, cluster)
    rec = start(qwex, project, "sleep", "300")
    name = rec["backend_data"]["job"]
    cluster.created.append(name)
    wait_for("the pod to run", lambda: "Running" in pod_phases(cluster, rec["id"]), timeout=120)
    moved = project.parent / f"{project.name}-moved"
    shutil.move(project, moved)
    for where in (moved, project.parent):  # from the moved project, and from elsewhere
        dry = qwex("gc", "--dry-run", "--json", cwd=where, check=True)
        assert name not in dry.stdout
        qwex("gc", "--force", cwd=where, check=True)
    assert job(cluster, name) is not None
    assert pod_phases(cluster, rec["id"]) == ["Running"]
    status = json.loads(qwex("status", rec["id"], "--json", cwd=moved, check=True).stdout)
    assert status["status"] == "running"


def test_gc_leaves_a_teammates_finished_job_alone(
    project: Path, qwex: Qwex, cluster: Cluster, tmp_path: Path
) -> None:
    """Another project's ended Job, made under the same host name with a run folder that is
    not here (a teammate's VM): nothing proves it ours, so `gc` does not touch it."""
    teammate = tmp_path / "teammate"
    teammate.mkdir()
    configure(teammate, cluster)
    rec = start(qwex, teammate, "true")
    name = rec["backend_data"]["job"]
    cluster.created.append(name)
    qwex("wait", rec["id"], cwd=teammate, check=True, timeout=120)
    shutil.rmtree(teammate / ".qwex")  # its records are on the teammate's machine, not here
    configure(project, cluster)
    dry = qwex("gc", "--dry-run", "--json", cwd=project, check=True)
    assert name not in dry.stdout
    qwex("gc", "--force", cwd=project, check=True)
    assert job(cluster, name) is not None


def test_gc_removes_a_pod_left_by_an_orphaning_delete(
    project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """`kubectl delete job --cascade=orphan` leaves the pod: gc finds it and says why."""
    configure(project, cluster)
    rec = start(qwex, project, "true")
    name = rec["backend_data"]["job"]
    cluster.created.append(name)
    qwex("wait", rec["id"], cwd=project, check=True, timeout=120)
    # The run's end is recorded once the container exits; the kubelet reports the pod's
    # phase, and the Job its completion, a moment later.
    wait_for("the pod to succeed", lambda: pod_phases(cluster, rec["id"]) == ["Succeeded"])
    cluster.batch.delete_namespaced_job(name, cluster.namespace, propagation_policy="Orphan")
    wait_for("the Job to go", lambda: job(cluster, name) is None, timeout=60)
    wait_for(
        "the pod to lose its owner",
        lambda: all(
            not (p.metadata and p.metadata.owner_references)
            for p in cluster.core.list_namespaced_pod(
                cluster.namespace, label_selector=f"qwex.dev/run-id={rec['id']}"
            ).items
        ),
        timeout=60,
    )
    assert pod_phases(cluster, rec["id"]) == ["Succeeded"]
    dry = json.loads(qwex("gc", "--dry-run", "--json", check=True).stdout)
    pods = [f for f in dry if f["kind"] == "pod" and f["run"] == rec["id"]]
    assert len(pods) == 1 and "its Job is gone" in pods[0]["why"], dry
    qwex("gc", "--force", check=True)
    wait_for("gc to delete the pod", lambda: pod_phases(cluster, rec["id"]) == [], timeout=60)


@pytest.mark.parametrize("left", ["no Job name", "a Job name, no Job"])
def test_a_run_whose_starter_died_before_its_job_existed_ends_failed(
    project: Path, qwex: Qwex, cluster: Cluster, left: str
) -> None:
    """A client killed 0.2-0.45 s after `qwex run` leaves a `pending` record and no Job: it is
    found (its age, no starter, no Job) and recorded `failed`, so `wait` and `logs -f` end."""
    from datetime import UTC, datetime, timedelta

    from qwex_core.ids import uuid7

    configure(project, cluster)
    model = start(qwex, project, "true")
    qwex("wait", model["id"], cwd=project, check=True, timeout=120)
    run_id = uuid7()
    created = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    record = {
        **{k: model[k] for k in ("backend", "spec")},
        "id": run_id,
        "short_id": run_id[-12:],
        "status": "pending",
        "created_at": created,
        "history": [{"status": "pending", "at": created}],
        "backend_data": {}
        if left == "no Job name"
        else {"job": f"qwex-{run_id}", "namespace": cluster.namespace},
    }
    run_dir = project / ".qwex" / "runs" / run_id
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(record))
    for name in ("stdout.log", "stderr.log"):
        (run_dir / name).touch()
    waited = qwex("wait", run_id, cwd=project, timeout=60)
    assert waited.returncode != 0
    logs = qwex("logs", "-f", run_id, cwd=project, timeout=60)
    assert logs.returncode == 0, logs.stderr
    status = json.loads(qwex("status", run_id, "--json", cwd=project, check=True).stdout)
    assert status["status"] == "failed"
    assert "stopped before it created the Job" in status["reason"]


def test_gc_looks_in_the_namespaces_it_is_given(
    project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    other = cluster.name("qwex-gc")
    cluster.core.create_namespace(body({"metadata": {"name": other}}))
    try:
        configure(project, cluster, namespace=other)
        rec = start(qwex, project, "true")
        qwex("wait", rec["id"], cwd=project, check=True, timeout=120)
        name = rec["backend_data"]["job"]
        configure(project, cluster)  # back to the usual namespace
        assert name not in qwex("gc", "--dry-run", cwd=project, check=True).stdout
        configure(project, cluster, gc_namespaces=[other])
        dry = qwex("gc", "--dry-run", cwd=project, check=True).stdout
        assert f"would remove job {other}/{name}" in dry, dry
        qwex("gc", "--force", cwd=project, check=True)
        wait_for(
            "gc to delete the Job",
            lambda: not cluster.batch.list_namespaced_job(other).items,
            timeout=60,
        )
    finally:
        cluster.core.delete_namespace(other)


def test_gc_leaves_a_snapshot_a_job_takes_up_while_it_looks(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two snapshot ConfigMaps no Job owns, in a namespace of their own: gc removes both,
    unless, between its listing and its delete, another qwex's Job takes one up (a
    teammate submitting the same code owns the existing ConfigMap). The API server then
    refuses that delete, and gc neither removes nor reports it."""
    from qwex_k8s import manifests
    from qwex_k8s.gc import collect

    other = cluster.name("qwex-gc")
    cluster.core.create_namespace(body({"metadata": {"name": other}}))
    try:
        taken, unused = (
            manifests.snapshot_configmap(hashlib.sha256(seed).hexdigest(), seed, other)
            for seed in (os.urandom(16), os.urandom(16))
        )
        for cm in (taken, unused):
            cluster.core.create_namespaced_config_map(other, body(cm))
        teammates = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": cluster.name("teammate")},
            "spec": {
                "suspend": True,  # never runs: it only owns the snapshot
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": cluster.busybox}],
                    }
                },
            },
        }
        made = cluster.batch.create_namespaced_job(other, body(teammates)).metadata
        assert made is not None and made.uid
        owner = manifests.owner_reference(teammates, made.uid)
        delete = client.CoreV1Api.delete_namespaced_config_map

        def teammate_first(self: client.CoreV1Api, name: str, ns: str, **kw: Any) -> Any:
            if name == taken["metadata"]["name"]:
                patch = {"metadata": {"ownerReferences": [owner]}}
                self.patch_namespaced_config_map(name, ns, body(patch))
            return delete(self, name, ns, **kw)

        monkeypatch.setattr(client.CoreV1Api, "delete_namespaced_config_map", teammate_first)
        found = collect(cluster.api, other)
        assert [(g.kind, g.name, g.removed) for g in found] == [
            ("configmap", unused["metadata"]["name"], True)
        ]
        left = cluster.core.list_namespaced_config_map(
            other, label_selector=manifests.LABEL_SNAPSHOT
        ).items
        kept = [(m.name, len(m.owner_references or [])) for m in (cm.metadata for cm in left) if m]
        assert kept == [(taken["metadata"]["name"], 1)]
    finally:
        cluster.core.delete_namespace(other)
