"""The chart installed into the real test cluster, and the ways the tests reach it.

`installed()` makes a namespace, the tokens' Secret and `helm install --wait`s the chart with
the test cluster's image and queue; `port_forward()` is `kubectl port-forward` to the
Service, and `service_forward()` keeps one on the same local port across the server's pod
being replaced (what a Service does for a client in a cluster with kube-proxy, which the
test cluster has not).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helm_support import CHART, kubeconfig_path, kubectl_path, run_helm

IMAGE = "qwex.local/qwex-server"
"""noxfile.SERVER_IMAGE, loaded into the node by `nox -s server_image`."""
TAG = os.environ.get("QWEX_SERVER_IMAGE_TAG", "0.1.0")
"""Its tag: another names an image built from a branch, beside the shared one."""
KINDS = (
    "statefulset,controllerrevision,pod,service,configmap,serviceaccount,role,rolebinding,pvc,"
    "ingress"
)
JOBS_NAMESPACE = os.environ.get("QWEX_K8S_NAMESPACE", "qwex-test")
"""Where the server sends its jobs: the test cluster's namespace with a Kueue LocalQueue."""
LOCAL_QUEUE = os.environ.get("QWEX_K8S_LOCAL_QUEUE", "qwex-queue")
BUSYBOX = os.environ.get("QWEX_K8S_BUSYBOX_IMAGE", "qwex-test/busybox:latest")
PYTHON = os.environ.get("QWEX_K8S_PYTHON_IMAGE", "qwex-test/python:latest")
PORT = 8765


@dataclass
class Release:
    helm: Path
    kubectl: Path
    kubeconfig: Path
    namespace: str
    name: str
    token: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-qwex-server"

    @property
    def selector(self) -> str:
        """The label selector of the chart's objects."""
        return f"app.kubernetes.io/instance={self.name}"

    def kube(
        self, *args: str, timeout: float = 60, input_: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args],
            input=input_,
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

    def pods(self) -> list[dict[str, Any]]:
        """The server's pods not being deleted, as `kubectl get -o json` gives them."""
        found = self.kube("get", "pods", "-l", self.selector, "-o", "json")
        assert found.returncode == 0, found.stderr
        items = json.loads(found.stdout)["items"]
        return [p for p in items if p["metadata"].get("deletionTimestamp") is None]

    def apply(self, manifests: str, namespace: str = "") -> None:
        """`kubectl apply` in the release's namespace, or `namespace`."""
        applied = self.kube("apply", "-n", namespace or self.namespace, "-f", "-", input_=manifests)
        assert applied.returncode == 0, applied.stderr

    def diagnosis(self) -> str:
        """What to read when an install or a wait failed: the pods and the server's log
        (without its access lines)."""
        logs = self.kube(
            "logs", "-l", self.selector, "--all-containers", "--tail=200", "--prefix"
        ).stdout.splitlines()
        said = [line for line in logs if '" 200' not in line and "HTTP/1.1" not in line]
        return self.kube("describe", "pods").stdout[-3000:] + "\n".join(said[-40:])


def new_release(helm: Path) -> Release:
    kubectl, kubeconfig = kubectl_path(), kubeconfig_path()
    if kubectl is None or not kubeconfig.is_file():
        problem = f"no kubectl or no test cluster (kubeconfig {kubeconfig})"
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; `nox -s cluster -- up` starts it", pytrace=False)
        pytest.skip(f"{problem}: `nox -s cluster -- up` starts it")
    unique = uuid.uuid4().hex[:6]  # the Role in the shared jobs' namespace is named after it
    return Release(
        helm, kubectl, kubeconfig, f"qwex-helm-{unique}", f"q{unique}",
        "qwex_" + secrets.token_urlsafe(32),
    )  # fmt: skip


def chart_values(r: Release, *extra: str) -> list[str]:
    """`--set` arguments of the test cluster's install: its image, tokens, queue, API address."""
    return [
        "--set", "tokens.existingSecret=qwex-tokens", "--set", "tokens.roles.lead=admin",
        "--set", f"image.repository={IMAGE}", "--set", f"image.tag={TAG}",
        "--set", "image.pullPolicy=Never",
        "--set", f"jobsNamespace={JOBS_NAMESPACE}", "--set", f"k8s.queue={LOCAL_QUEUE}",
        "--set-json", api_server_env(r), *extra,
    ]  # fmt: skip


CLAIM = """\
apiVersion: v1
kind: PersistentVolume
metadata: {name: NAMESPACE-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: "FOLDER", type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: NAMESPACE-data
  resources: {requests: {storage: 1Gi}}
"""
"""The claim `data` on a folder of this host: the test cluster has no provisioner."""


@contextlib.contextmanager
def installed(
    helm: Path,
    *values: str,
    data: Path | None = None,
    prepare: Callable[[Release], None] | None = None,
) -> Iterator[Release]:
    """The chart installed (and waited for) in a namespace of its own, removed after.
    `values`: more `--set` arguments; `data`: a folder of this host holding the server's
    data (the claim `data` on it, ReadWriteMany); `prepare`: called before the install."""
    r = new_release(helm)
    made = subprocess.run(
        [str(r.kubectl), "--kubeconfig", str(r.kubeconfig), "create", "namespace", r.namespace],
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
        if data is not None:
            data.chmod(0o777)  # the server runs as uid 10001; a hostPath takes no fsGroup
            r.apply(CLAIM.replace("FOLDER", str(data)).replace("NAMESPACE", r.namespace))
            values = (*values, "--set", "persistence.existingClaim=data")
        if prepare is not None:
            prepare(r)
        done = r.helm_run(
            "install", r.name, str(CHART), "--wait", "--timeout", "240s", *chart_values(r, *values)
        )
        assert done.returncode == 0, done.stderr + r.diagnosis()
        yield r
    finally:
        r.helm_run("uninstall", r.name, "--wait", "--timeout", "120s")
        for what in (["namespace", r.namespace], ["pv", f"{r.namespace}-data"]):
            subprocess.run(
                [str(r.kubectl), "--kubeconfig", str(r.kubeconfig), "delete", *what,
                 "--wait=false", "--ignore-not-found"],
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


def forward_process(r: Release, target: str, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(r.kubectl), "--kubeconfig", str(r.kubeconfig), "-n", r.namespace, "port-forward",
         target, f"{port}:{PORT}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_healthy(url: str, proc: subprocess.Popen[str] | None, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        if proc is not None:
            assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)
    raise AssertionError(f"no health answer at {url} in {seconds:.0f} s")


@contextlib.contextmanager
def port_forward(r: Release, target: str = "") -> Iterator[str]:
    """`kubectl port-forward` to the release's Service (or `target`): the base URL here."""
    port = free_port()
    proc = forward_process(r, target or f"svc/{r.fullname}", port)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def service_forward(r: Release) -> Iterator[str]:
    """The Service on one local port for as long as the block runs: `kubectl port-forward
    svc/...` follows one pod and ends with it, so a new one is started whenever it ends
    (a ready pod of the Service is chosen each time), as kube-proxy would send a client's
    next connection to the pod that replaced the one gone. The server's root URL."""
    port = free_port()
    stop = threading.Event()
    current: list[subprocess.Popen[str]] = []

    def keep() -> None:
        while not stop.is_set():
            proc = forward_process(r, f"svc/{r.fullname}", port)
            current[:] = [proc]
            while proc.poll() is None and not stop.is_set():
                time.sleep(0.2)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
            else:
                stop.wait(1)  # no ready pod yet: kubectl refuses at once

    thread = threading.Thread(target=keep, daemon=True)
    thread.start()
    try:
        wait_healthy(f"http://127.0.0.1:{port}/api/v1", None)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(20)


def jobs_with(release: Release, marker: str) -> list[dict[str, Any]]:
    """The Kubernetes Jobs in the jobs' namespace whose command holds `marker`."""
    found = release.kube("get", "jobs", "-n", JOBS_NAMESPACE, "-o", "json")
    assert found.returncode == 0, found.stderr
    return [
        job
        for job in json.loads(found.stdout)["items"]
        if marker in json.dumps(job["spec"]["template"]["spec"]["containers"])
    ]
