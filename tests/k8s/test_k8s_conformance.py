"""The Kubernetes runner passes the conformance suite every backend runs, on the real
cluster, in the image holding nothing but a static busybox (no libc, no /tmp).

One difference is by design: the API server gives a pod's log with stdout and stderr
merged, so a Kubernetes run's output is all in its stdout log (docs/kubernetes.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from k8s_support import Cluster, configure
from kubernetes import client
from qwex_core.models import Run, RunStatus
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
            core.delete_namespaced_pod(pod.metadata.name, data["namespace"], grace_period_seconds=0)

    def workdir_seen(self, service: RunService, host_dir: Path) -> str:
        relative = host_dir.relative_to(service.store.project_dir).as_posix()
        return "/workspace" if relative == "." else f"/workspace/{relative}"

    def test_logs_keep_each_stream(self, service: RunService) -> None:
        """Pod logs merge the streams: every line is in the stdout log, each stream's in
        its order (the two interleave as the agent copied them)."""
        run = self.finish(service, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert run.status is RunStatus.SUCCEEDED
        lines = self.stdout(service, run).splitlines()
        assert sorted(lines) == ["more-out", "to-err", "to-out"]
        assert lines.index("to-out") < lines.index("more-out")
