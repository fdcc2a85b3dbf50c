"""docs/quickstart.md's Kubernetes block, as written, on the test cluster (its namespace,
and the busybox test image loaded into the node in place of `busybox`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from k8s_support import Cluster, kubeconfig_path
from quickstart import blocks, run_block


def test_the_kubernetes_quick_start_runs_as_written(
    project: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig_path()))
    monkeypatch.setenv("QWEX_K8S_NAMESPACE", cluster.namespace)
    [body] = blocks("k8s")
    assert "--image busybox " in body
    try:
        result = run_block(body.replace("--image busybox ", f"--image {cluster.busybox} "), project)
    finally:  # the Jobs the block made go with the test's (Cluster.cleanup)
        for run in (project / ".qwex" / "runs").glob("*"):
            jobs = cluster.batch.list_namespaced_job(
                cluster.namespace, label_selector=f"qwex.dev/run-id={run.name}"
            )
            cluster.created += [str(job.metadata.name) for job in jobs.items if job.metadata]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from a pod" in result.stdout
    assert "exit code 4" in result.stdout
    assert "k8s" in result.stdout.splitlines()[-1]  # `qwex list -b k8s` shows the run
