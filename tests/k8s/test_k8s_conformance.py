"""The Kubernetes runner passes the conformance suite every backend runs, on the real
cluster, in the image holding nothing but a static busybox (no libc, no /tmp).

One difference is by design: the API server gives a pod's log with stdout and stderr
merged, so a Kubernetes run's output is all in its stdout log (docs/kubernetes.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from k8s_support import Cluster, configure
from kubernetes import client
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.service import RunService
from qwex_core.testing import RunnerConformance, service_for

pytestmark = [pytest.mark.k8s, pytest.mark.live]


class TestKubernetesRunner(RunnerConformance):
    backend = "k8s"
    timeout = 120.0

    @pytest.fixture
    def service(self, qwex_project: Path, cluster: Cluster) -> RunService:
        configure(qwex_project, cluster)
        return service_for(qwex_project, backend="k8s", image=cluster.busybox)

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        """The pod deleted at once from outside, as a lost node or a `kubectl delete` would."""
        runner = service.runner("k8s")
        core = client.CoreV1Api(runner.conn.api)  # type: ignore[attr-defined]
        data = service.store.load(run.id).backend_data
        for pod in core.list_namespaced_pod(
            data["namespace"], label_selector=f"qwex.dev/run-id={run.id}"
        ).items:
            assert pod.metadata is not None and pod.metadata.name is not None
            core.delete_namespaced_pod(pod.metadata.name, data["namespace"], grace_period_seconds=0)

    def workdir_seen(self, service: RunService, host_dir: Path) -> str:
        relative = host_dir.relative_to(service.store.project_dir).as_posix()
        return "/workspace" if relative == "." else f"/workspace/{relative}"

    def failing_job(self, service: RunService) -> JobSpec:
        """A uid beyond the range Kubernetes allows (2^31 and up: some directories hand out
        such uids): the API server refuses the Job, so `start` fails."""
        return service.job(["true"], container={"user": "2147483648"})

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """The run's pods on the real cluster, by the label the runner puts on them, that
        are not over (Pending or Running: a pod being deleted stays Running while its
        containers stop)."""
        conn: Any = service.runner("k8s").conn  # type: ignore[attr-defined]
        namespace = run.backend_data.get("namespace") or conn.namespace
        pods = client.CoreV1Api(conn.api).list_namespaced_pod(
            namespace, label_selector=f"qwex.dev/run-id={run.id}"
        )
        return [
            f"pod {p.metadata.name if p.metadata else None} ({p.status.phase})"
            for p in pods.items
            if p.status is not None and p.status.phase in ("Pending", "Running")
        ]

    def test_logs_keep_each_stream(self, service: RunService) -> None:
        """Pod logs merge the streams: every line is in the stdout log, each stream's in
        its order (the two interleave as the agent copied them)."""
        run = self.finish(service, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert run.status is RunStatus.SUCCEEDED
        lines = self.stdout(service, run).splitlines()
        assert sorted(lines) == ["more-out", "to-err", "to-out"]
        assert lines.index("to-out") < lines.index("more-out")
