"""`helm install` of the server's chart into the real test cluster: the pod gets ready with
the image built offline, its tokens bootstrapped from a Secret answer through the Service's
pod (kubectl port-forward), its service account may do what the backend needs and nothing
beyond the namespace, and `helm uninstall` leaves none of the chart's objects behind."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from helm_support import CHART, kubeconfig_path, kubectl_path, run_helm

pytestmark = pytest.mark.k8s

IMAGE = "qwex.local/qwex-server"
"""noxfile.SERVER_IMAGE, loaded into the node by `nox -s server_image`."""
KINDS = "deployment,replicaset,pod,service,configmap,serviceaccount,role,rolebinding,pvc,ingress"
JOBS_NAMESPACE = os.environ.get("QWEX_K8S_NAMESPACE", "qwex-test")
"""Where the server sends its jobs: the test cluster's namespace with a Kueue LocalQueue."""
LOCAL_QUEUE = os.environ.get("QWEX_K8S_LOCAL_QUEUE", "qwex-queue")
BUSYBOX = os.environ.get("QWEX_K8S_BUSYBOX_IMAGE", "qwex-test/busybox:latest")


@dataclass
class Release:
    helm: Path
    kubectl: Path
    kubeconfig: Path
    namespace: str
    name: str
    token: str

    def kube(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def helm_run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_helm(
            self.helm, *args, "--kubeconfig", str(self.kubeconfig), "-n", self.namespace,
            timeout=timeout,
        )  # fmt: skip

    def leftovers(self) -> list[str]:
        """The chart's objects still there, in its namespace and (the Role) the jobs'."""
        mine = f"app.kubernetes.io/instance={self.name}"
        found = self.kube("get", KINDS, "-l", mine, "-o", "name")
        assert found.returncode == 0, found.stderr
        role = self.kube("get", "role,rolebinding", "-n", JOBS_NAMESPACE, "-l", mine, "-o", "name")
        assert role.returncode == 0, role.stderr
        return found.stdout.split() + role.stdout.split()


@pytest.fixture(scope="module")
def release(helm: Path) -> Iterator[Release]:
    """The chart installed (and waited for) in a namespace of its own, removed after."""
    kubectl, kubeconfig = kubectl_path(), kubeconfig_path()
    if kubectl is None or not kubeconfig.is_file():
        problem = f"no kubectl or no test cluster (kubeconfig {kubeconfig})"
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; `nox -s cluster -- up` starts it", pytrace=False)
        pytest.skip(f"{problem}: `nox -s cluster -- up` starts it")
    unique = uuid.uuid4().hex[:6]  # the Role in the shared jobs' namespace is named after it
    r = Release(
        helm, kubectl, kubeconfig, f"qwex-helm-{unique}", f"q{unique}",
        "qwex_" + secrets.token_urlsafe(32),
    )  # fmt: skip
    made = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "create", "namespace", r.namespace],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    try:
        secret = r.kube(
            "create", "secret", "generic", "qwex-tokens", f"--from-literal=lead={r.token}"
        )
        assert secret.returncode == 0, secret.stderr
        installed = r.helm_run(
            "install", r.name, str(CHART), "--wait", "--timeout", "240s",
            "--set", "tokens.existingSecret=qwex-tokens", "--set", "tokens.roles.lead=admin",
            "--set", f"image.repository={IMAGE}", "--set", "image.pullPolicy=Never",
            "--set", "persistence.enabled=false", "--set", f"jobsNamespace={JOBS_NAMESPACE}",
            "--set", f"k8s.queue={LOCAL_QUEUE}", "--set-json", api_server_env(r),
        )  # fmt: skip
        assert installed.returncode == 0, (
            installed.stderr + r.kube("describe", "pods").stdout + r.kube("logs", "-l",
            f"app.kubernetes.io/instance={r.name}", "--all-containers", "--tail=40").stdout
        )  # fmt: skip
        yield r
    finally:
        r.helm_run("uninstall", r.name, "--wait", "--timeout", "120s")
        subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "delete", "namespace", r.namespace,
             "--wait=false"],
            capture_output=True,
            check=False,
        )  # fmt: skip


def api_server_env(r: Release) -> str:
    """`extraEnv` pointing the pod's in-cluster configuration at the API server's own address:
    the test cluster has no kube-proxy, so its Service address leads nowhere."""
    found = subprocess.run(
        [str(r.kubectl), "--kubeconfig", str(r.kubeconfig), "-n", "default", "get", "endpoints",
         "kubernetes", "-o", "jsonpath={.subsets[0].addresses[0].ip} {.subsets[0].ports[0].port}"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    host, port = found.stdout.split()
    env = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": host},
        {"name": "KUBERNETES_SERVICE_PORT", "value": port},
    ]
    return f"extraEnv={json.dumps(env)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def port_forward(r: Release) -> Iterator[str]:
    """`kubectl port-forward` to the release's Service: the base URL on this machine."""
    port = free_port()
    proc = subprocess.Popen(
        [str(r.kubectl), "--kubeconfig", str(r.kubeconfig), "-n", r.namespace, "port-forward",
         f"svc/{r.name}-qwex-server", f"{port}:8765"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    yield url
                    return
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.3)
        raise AssertionError("no health answer through kubectl port-forward in 30 s")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_installed_server_answers_with_the_token_from_the_secret(release: Release) -> None:
    with port_forward(release) as url:
        assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
        headers = {"Authorization": f"Bearer {release.token}"}
        assert httpx.get(f"{url}/jobs", params={"limit": 1}, headers=headers).status_code == 200
        wrong = {"Authorization": "Bearer qwex_" + "x" * 43}
        assert httpx.get(f"{url}/jobs", params={"limit": 1}, headers=wrong).status_code == 401


def test_a_job_submitted_to_it_runs_as_a_kubernetes_job_with_output_and_exit_code(
    release: Release,
) -> None:
    """The chart's defaults send a remote job to the k8s backend, in-cluster, queued by
    Kueue in the jobs' namespace: what it prints and its exit code come back."""
    headers = {"Authorization": f"Bearer {release.token}"}
    with port_forward(release) as url, httpx.Client(base_url=url, headers=headers) as api:
        job = api.post(
            "/jobs",
            json={
                "submission_id": uuid.uuid4().hex,
                "command": ["sh", "-c", "echo hello from the cluster; exit 3"],
                "image": BUSYBOX,
            },
        )
        assert job.status_code == 201, job.text
        assert job.json()["backend"] == "k8s"
        deadline = time.monotonic() + 120
        while (seen := api.get(f"/jobs/{job.json()['id']}").json())["finished_at"] is None:
            assert time.monotonic() < deadline, seen
            time.sleep(1)
        assert (seen["status"], seen["exit_code"]) == ("failed", 3), seen
        logs = api.get(f"/jobs/{seen['id']}/logs").json()
        assert logs["data"] == "hello from the cluster\n"


def test_a_running_job_is_cancelled_through_it_and_its_kubernetes_job_goes(
    release: Release,
) -> None:
    """Cancel needs the Job's delete and the pods' finalizer patch: the Role's rules, for real."""
    marker = f"started-{uuid.uuid4().hex}"
    headers = {"Authorization": f"Bearer {release.token}"}
    with port_forward(release) as url, httpx.Client(base_url=url, headers=headers) as api:
        job = api.post(
            "/jobs",
            json={
                "submission_id": uuid.uuid4().hex,
                "command": ["sh", "-c", f"echo {marker}; sleep 300"],
                "image": BUSYBOX,
            },
        ).json()
        deadline = time.monotonic() + 120
        while api.get(f"/jobs/{job['id']}/logs").json()["data"] != f"{marker}\n":
            assert time.monotonic() < deadline, api.get(f"/jobs/{job['id']}").json()
            time.sleep(1)
        assert len(jobs_running(release, marker)) == 1
        assert api.post(f"/jobs/{job['id']}/cancel").status_code == 200
        while (seen := api.get(f"/jobs/{job['id']}").json())["finished_at"] is None:
            assert time.monotonic() < deadline + 60, seen
            time.sleep(1)
        assert seen["status"] == "cancelled", seen
    while jobs_running(release, marker) and time.monotonic() < deadline + 120:
        time.sleep(1)
    assert jobs_running(release, marker) == []


def jobs_running(release: Release, marker: str) -> list[str]:
    """The Kubernetes Jobs in the jobs' namespace whose command holds `marker`."""
    found = release.kube("get", "jobs", "-n", JOBS_NAMESPACE, "-o", "json")
    assert found.returncode == 0, found.stderr
    return [
        job["metadata"]["name"]
        for job in json.loads(found.stdout)["items"]
        if marker in json.dumps(job["spec"]["template"]["spec"]["containers"])
    ]


@pytest.mark.parametrize(
    ("verb", "resource", "where", "allowed"),  # where "": the jobs' namespace
    [
        ("create", "jobs.batch", "", True),
        ("watch", "workloads.kueue.x-k8s.io", "", True),
        ("get", "pods --subresource=log", "", True),
        ("get", "secrets", "", False),
        ("list", "secrets", "", False),
        ("get", "secrets", "kube-system", False),
        ("create", "jobs.batch", "kube-system", False),
        ("list", "nodes", "", False),
        ("create", "clusterroles.rbac.authorization.k8s.io", "", False),
        ("create", "jobs.batch", "RELEASE", False),  # its own namespace: nothing granted
    ],
)
def test_the_service_account_may_do_what_the_backend_needs_and_no_more(
    release: Release, verb: str, resource: str, where: str, allowed: bool
) -> None:
    account = f"system:serviceaccount:{release.namespace}:{release.name}-qwex-server"
    namespace = {"": JOBS_NAMESPACE, "RELEASE": release.namespace}.get(where, where)
    args = ["auth", "can-i", verb, *resource.split(), "--as", account, "--namespace", namespace]
    answer = release.kube(*args)
    assert answer.stdout.strip() == ("yes" if allowed else "no"), answer.stderr


def test_uninstall_leaves_none_of_the_charts_objects(release: Release) -> None:
    assert release.leftovers()  # installed: the query finds them
    removed = release.helm_run("uninstall", release.name, "--wait", "--timeout", "120s")
    assert removed.returncode == 0, removed.stderr
    deadline = time.monotonic() + 60
    while release.leftovers() and time.monotonic() < deadline:
        time.sleep(1)
    assert release.leftovers() == []
