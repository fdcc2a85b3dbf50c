"""Finding the Kubernetes cluster the k8s tests run against, and small helpers for them.

The kubeconfig is `$QWEX_K8S_KUBECONFIG` when set (any real cluster: the `live` case),
else the one `nox -s cluster -- up` writes (`$QWEX_K8S_STATE/kubeconfig`, by default
/var/lib/qwex-k8s/kubeconfig). The plain `KUBECONFIG` is deliberately not read: a test run
must not create Jobs in whatever cluster a developer's shell happens to point at.

On another cluster, these name what the tests use (defaults: what `up` creates):
QWEX_K8S_NAMESPACE, QWEX_K8S_LOCAL_QUEUE, QWEX_K8S_BUSYBOX_IMAGE.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from kubernetes import client
from kubernetes import config as kube_config

T = TypeVar("T")

HOW_TO = "start one with `nox -s cluster -- up` (as root), or set QWEX_K8S_KUBECONFIG"
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"


def kubeconfig_path() -> Path:
    """Where the tests' kubeconfig is: QWEX_K8S_KUBECONFIG, else the test cluster's."""
    explicit = os.environ.get("QWEX_K8S_KUBECONFIG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("QWEX_K8S_STATE", "/var/lib/qwex-k8s")) / "kubeconfig"


def new_client(path: Path) -> client.ApiClient:
    """A client of the cluster of the kubeconfig at `path` (the kubernetes package leaves
    `new_client_from_config` unannotated)."""
    make = cast(Callable[..., client.ApiClient], kube_config.new_client_from_config)
    return make(config_file=str(path))


def body(manifest: dict[str, Any]) -> Any:
    """A manifest as a request body: the client sends a plain dict as it is, though its
    annotations name only its model classes (V1Job, V1Secret...)."""
    return manifest


def serialized(api: client.ApiClient, obj: object) -> object:
    """`obj` (a model the client read) as the JSON the API server sent (the client leaves
    `sanitize_for_serialization` unannotated)."""
    sanitize = cast(Callable[[object], object], api.sanitize_for_serialization)
    return sanitize(obj)


def custom_object(answer: object) -> dict[str, Any]:
    """A custom object (or list of them) as the client returns it: decoded JSON, which its
    annotations call only `object`."""
    assert isinstance(answer, dict), answer
    return cast(dict[str, Any], answer)


@dataclass
class Cluster:
    """A reachable cluster and the names the tests use in it."""

    api: client.ApiClient
    namespace: str = field(
        default_factory=lambda: os.environ.get("QWEX_K8S_NAMESPACE", "qwex-test")
    )
    local_queue: str = field(
        default_factory=lambda: os.environ.get("QWEX_K8S_LOCAL_QUEUE", "qwex-queue")
    )
    busybox: str = field(
        default_factory=lambda: os.environ.get("QWEX_K8S_BUSYBOX_IMAGE", "qwex-test/busybox:latest")
    )
    created: list[str] = field(default_factory=list)  # Job names to delete afterwards

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def name(self, prefix: str) -> str:
        """A fresh object name, so that runs never collide."""
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    def create_job(self, job: dict[str, Any]) -> str:
        name: str = job["metadata"]["name"]
        self.batch.create_namespaced_job(self.namespace, body(job))
        self.created.append(name)
        return name

    def job(self, name: str) -> Any:
        return self.batch.read_namespaced_job(name, self.namespace)

    def job_pods(self, name: str) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
        return list(pods.items)

    def workload_of(self, job_name: str) -> dict[str, Any] | None:
        """The Kueue Workload owned by the Job, if Kueue has made one."""
        uid = self.job(job_name).metadata.uid
        workloads = custom_object(
            self.custom.list_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, self.namespace, "workloads"
            )
        )
        for wl in workloads["items"]:
            owners = wl["metadata"].get("ownerReferences") or []
            if any(o.get("uid") == uid for o in owners):
                return dict(wl)
        return None

    def cluster_queue_quota(self, resource: str) -> str:
        """The nominal quota of `resource` in the ClusterQueue behind the tests' LocalQueue."""
        lq = custom_object(
            self.custom.get_namespaced_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, self.namespace, "localqueues", self.local_queue
            )
        )
        cq = custom_object(
            self.custom.get_cluster_custom_object(
                KUEUE_GROUP, KUEUE_VERSION, "clusterqueues", lq["spec"]["clusterQueue"]
            )
        )
        for group in cq["spec"]["resourceGroups"]:
            for flavor in group["flavors"]:
                for res in flavor["resources"]:
                    if res["name"] == resource:
                        return str(res["nominalQuota"])
        raise AssertionError(f"ClusterQueue {cq['metadata']['name']} has no quota for {resource}")

    def cleanup(self) -> None:
        """Delete the Jobs a test made, and let their pods go (a test that stopped before
        qwex recorded the end leaves them held by qwex's finalizer)."""
        from qwex_k8s.finalizer import release

        for name in self.created:
            try:
                self.batch.delete_namespaced_job(
                    name, self.namespace, propagation_policy="Background"
                )
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
            for pod in self.core.list_namespaced_pod(
                self.namespace, label_selector=f"qwex.dev/run-id={name.removeprefix('qwex-')}"
            ).items:
                release(self.core, pod)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 180) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The status condition of type `kind` of a (dict-shaped) object, if any."""
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def millicores(quantity: str) -> int:
    """A CPU quantity ("1", "500m", "2.5") in millicores."""
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


AGENT_IMAGE = os.environ.get("QWEX_K8S_AGENT_IMAGE")
"""The agent image the runs use (read before the tests clear QWEX_* variables); default:
the one matching this qwex-core, which `nox -s agent_image` loads into the test cluster."""
PYTHON_IMAGE = os.environ.get("QWEX_K8S_PYTHON_IMAGE", "qwex-test/python:latest")


def configure(project: Path, cluster: Cluster, **settings: Any) -> Path:
    """Point the project's qwex.toml at the cluster: `[k8s]` with the kubeconfig, namespace
    and agent image, plus `settings` (TOML values: str, int, list, dict of str)."""
    import json

    table: dict[str, Any] = {
        "kubeconfig": str(kubeconfig_path()),
        "namespace": cluster.namespace,
        "ttl_seconds_after_finished": 300,
    }
    if AGENT_IMAGE:
        table["agent_image"] = AGENT_IMAGE
    table.update(settings)
    lines = ['backend = "k8s"', f"image = {json.dumps(cluster.busybox)}", "[k8s]"]
    for key, value in table.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    path = project / "qwex.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def api_connections(pid: int) -> int:
    """How many TCP connections process `pid` holds open to the cluster's API server (a
    watch is one): read from /proc, so a test can wait until a qwex process watches."""
    import yaml

    server = yaml.safe_load(kubeconfig_path().read_text())["clusters"][0]["cluster"]["server"]
    port = int(server.rsplit(":", 1)[1].split("/")[0])
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and fields[9] in sockets:
                    count += 1  # 01: ESTABLISHED
    return count
