"""Promises of docs/kubernetes.md that no other test checked, on the real cluster through
the real CLI: Ctrl-C or SIGTERM on a foreground `qwex run` deletes the Job (and its pod);
`qwex gc` removes a Job whose run record is gone; the snapshot ConfigMap is shared by runs
of an unchanged tree, owned by their Jobs, and deleted by the cluster with the last one."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_support import Cluster, configure, wait_for
from kubernetes import client

pytestmark = [pytest.mark.k8s, pytest.mark.live]

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def k8s_project(project: Path, cluster: Cluster) -> Path:
    configure(project, cluster)
    # a file of its own, so that this project's snapshot is no other test's
    (project / "unique.txt").write_text(uuid.uuid4().hex)
    return project


def record(qwex: Qwex, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(qwex("status", run_id, "--json", check=True).stdout)
    return out


def last_run(qwex: Qwex) -> dict[str, Any]:
    newest = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
    return record(qwex, newest)


def absent(read: Callable[[], Any]) -> bool:
    """Whether reading the object answers 404."""
    try:
        read()
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def job_gone(cluster: Cluster, name: str) -> bool:
    return absent(lambda: cluster.job(name))


def configmap(cluster: Cluster, name: str) -> Any:
    return cluster.core.read_namespaced_config_map(name, cluster.namespace)


def pods_of(cluster: Cluster, run_id: str) -> list[Any]:
    return list(
        cluster.core.list_namespaced_pod(
            cluster.namespace, label_selector=f"qwex.dev/run-id={run_id}"
        ).items
    )


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)]
)
def test_a_signal_to_a_foreground_run_deletes_its_job(
    k8s_project: Path, qwex: Qwex, cluster: Cluster, signum: int, code: int
) -> None:
    """ "qwex cancel (or Ctrl-C on qwex run) records the intent, then deletes the Job";
    docs/runs.md: SIGTERM on a foreground `qwex run` cancels like Ctrl-C. Once the command
    has printed (it runs), the signal goes to qwex; nothing of the run is left on the
    cluster, and qwex exits as documented."""
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", "echo up; sleep 300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        rec = last_run(qwex)
        job = rec["backend_data"]["job"]
        cluster.created.append(job)
        assert not job_gone(cluster, job)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert record(qwex, rec["id"])["status"] == "cancelled"
    wait_for("the run's pods to be gone", lambda: not pods_of(cluster, rec["id"]), timeout=120)
    wait_for("the run's Job to be gone", lambda: job_gone(cluster, job), timeout=120)


def test_gc_removes_a_job_whose_run_record_is_gone(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """ "Of its own Jobs it removes those with no pod pending or running whose run is final
    (or whose record is gone)". The run's folder is deleted by hand after it ended."""
    result = qwex("run", "--", "true", timeout=180)
    assert result.returncode == 0, result.stderr
    rec = last_run(qwex)
    job = rec["backend_data"]["job"]
    cluster.created.append(job)
    shutil.rmtree(k8s_project / ".qwex" / "runs" / rec["id"])

    dry = json.loads(qwex("gc", "--dry-run", "--json", check=True).stdout)
    mine = [g for g in dry if g["kind"] == "job" and g["name"].endswith(job)]
    assert len(mine) == 1, dry
    assert mine[0]["why"].startswith("no run record") and not mine[0]["removed"]
    assert not job_gone(cluster, job), "--dry-run deleted the Job"

    removed = json.loads(qwex("gc", "--force", "--json", check=True).stdout)
    assert [g["removed"] for g in removed if g["kind"] == "job" and g["name"].endswith(job)] == [
        True
    ]
    wait_for("gc to delete the Job", lambda: job_gone(cluster, job), timeout=60)


def test_the_snapshot_configmap_is_shared_owned_and_deleted_with_the_last_job(
    k8s_project: Path, qwex: Qwex, cluster: Cluster
) -> None:
    """ "packed ... into an immutable ConfigMap qwex-code-<sha256>, owned by the Jobs that use
    it (an unchanged tree is not sent again: the next Job is added to its owners; the
    cluster deletes it with the last one)"."""
    runs = []
    for _ in range(2):
        assert qwex("run", "--", "cat", "unique.txt", timeout=180).returncode == 0
        runs.append(last_run(qwex))
    jobs = [r["backend_data"]["job"] for r in runs]
    cluster.created.extend(jobs)
    names = {r["backend_data"]["snapshot"] for r in runs}
    assert len(names) == 1, f"an unchanged tree made two snapshots: {names}"
    (name,) = names
    assert name.startswith("qwex-code-")
    cm = configmap(cluster, name)
    assert cm.immutable is True
    uids = {cluster.job(j).metadata.uid: j for j in jobs}
    owners = {(o.kind, o.name, o.uid) for o in cm.metadata.owner_references or []}
    assert owners == {("Job", j, uid) for uid, j in uids.items()}

    (k8s_project / "unique.txt").write_text("changed")
    assert qwex("run", "--", "true", timeout=180).returncode == 0
    changed = last_run(qwex)
    cluster.created.append(changed["backend_data"]["job"])
    assert changed["backend_data"]["snapshot"] not in (None, name), "a changed tree reused it"

    def delete_job(job: str) -> None:
        cluster.batch.delete_namespaced_job(job, cluster.namespace, propagation_policy="Background")
        wait_for(f"the Job {job} to be gone", lambda: job_gone(cluster, job), timeout=60)

    delete_job(jobs[0])
    # the cluster's garbage collector drops the gone owner from the ConfigMap: once it has,
    # it has decided, and the ConfigMap must still be there for the other Job
    wait_for(
        "the garbage collector to drop the deleted owner",
        lambda: (
            absent(lambda: configmap(cluster, name))
            or [o.name for o in configmap(cluster, name).metadata.owner_references or []]
            == [jobs[1]]
        ),
        timeout=120,
    )
    assert not absent(lambda: configmap(cluster, name)), "deleted with a Job not the last"
    delete_job(jobs[1])
    wait_for(
        "the cluster to delete the snapshot with its last Job",
        lambda: absent(lambda: configmap(cluster, name)),
        timeout=120,
    )
