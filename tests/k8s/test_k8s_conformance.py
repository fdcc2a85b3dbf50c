"""The Kubernetes runner passes the conformance suite of observed backends, on the real
cluster, in the image holding nothing but a static busybox (no libc, no /tmp): core writes
the record and the log from what the runner observes, also while a Kueue queue holds the
run, while the API server cannot be reached, and with two qwex processes following.

One difference is by design: the API server gives a pod's log with stdout and stderr
merged, so a Kubernetes run's output is all in its stdout log (docs/kubernetes.md)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml
from k8s_support import Cluster, configure, kubeconfig_path
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.service import RunService
from qwex_core.testing import ObservedConformance, service_for
from qwex_k8s.runner import KubernetesRunner

pytestmark = [pytest.mark.k8s, pytest.mark.live]


def closed_port() -> int:
    """A port of this machine nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestKubernetesRunner(ObservedConformance):
    backend = "k8s"
    timeout = 120.0

    @pytest.fixture
    def service(self, qwex_project: Path, cluster: Cluster) -> RunService:
        self.cluster = cluster
        configure(qwex_project, cluster)
        return service_for(qwex_project, backend="k8s", image=cluster.busybox)

    def runner(self, service: RunService) -> KubernetesRunner:
        return cast(KubernetesRunner, service.runner("k8s"))

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        """The pod deleted at once from outside, as a lost node or a `kubectl delete` would."""
        core = self.cluster.core
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
        containers stop). Asked with the test's own client: it sees the cluster also while
        the runner cannot (`far_side_down`)."""
        namespace = run.backend_data.get("namespace") or self.cluster.namespace
        pods = self.cluster.core.list_namespaced_pod(
            namespace, label_selector=f"qwex.dev/run-id={run.id}"
        )
        return [
            f"pod {p.metadata.name if p.metadata else None} ({p.status.phase})"
            for p in pods.items
            if p.status is not None and p.status.phase in ("Pending", "Running")
        ]

    def queued_job(self, service: RunService) -> JobSpec:
        """A job in the tests' Kueue queue asking more CPU than its ClusterQueue has: Kueue
        keeps it queued ("can never be admitted as it stands") until it is cancelled, and
        it holds no quota other tests of the shared cluster need."""
        runner = self.runner(service)
        runner.k8s = runner.k8s.model_copy(update={"queue": self.cluster.local_queue})
        return service.job(["sh", "-c", "echo never"], resources={"cpu": 64})

    @contextlib.contextmanager
    def far_side_down(self, service: RunService, run: Run) -> Iterator[None]:
        """The runner's kubeconfig points at a port nothing listens on (what a lost API
        server looks like), its watches dropped; the pod runs on regardless."""
        runner = self.runner(service)
        config = yaml.safe_load(kubeconfig_path().read_text())
        for entry in config["clusters"]:
            entry["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
        down = Path(service.store.project_dir).parent / "kubeconfig-down"
        down.write_text(yaml.safe_dump(config))
        settings = runner.k8s
        runner.k8s = settings.model_copy(update={"kubeconfig": str(down)})
        runner.reconnect()
        try:
            yield
        finally:
            runner.k8s = settings
            runner.reconnect()

    def test_logs_keep_each_stream(self, service: RunService) -> None:
        """Pod logs merge the streams: every line is in the stdout log, each stream's in
        its order (the two interleave as the agent copied them)."""
        run = self.finish(service, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert run.status is RunStatus.SUCCEEDED
        lines = self.stdout(service, run).splitlines()
        assert sorted(lines) == ["more-out", "to-err", "to-out"]
        assert lines.index("to-out") < lines.index("more-out")
