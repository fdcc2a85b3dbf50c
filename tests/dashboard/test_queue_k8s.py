"""The queue page with runs that Kubernetes holds back: a server whose jobs go to the real
test cluster, into Kueue's LocalQueue, where one run takes the whole CPU quota and the next
waits. The page groups that one under its backend and LocalQueue, with Kueue's words."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dash_support import job, signed_in, started
from server_support import Server, wait_status

sys.path.insert(0, str(Path(__file__).parents[1] / "k8s"))

from k8s_support import AGENT_IMAGE, HOW_TO, Cluster, kubeconfig_path, millicores, new_client
from kubernetes import client

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def k8s_api() -> Iterator[client.ApiClient]:
    """The test cluster, checked to answer; under CI a missing cluster is a failure."""
    try:
        api = new_client(kubeconfig_path())
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # no kubeconfig, no cluster: either way it cannot be used
        message = f"no usable Kubernetes cluster ({type(exc).__name__}): {HOW_TO}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this is an error", pytrace=False)
        pytest.skip(message)
    with contextlib.closing(api):
        yield api


@pytest.fixture(scope="module")
def cluster(k8s_api: client.ApiClient) -> Cluster:
    return Cluster(api=k8s_api)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cluster: Cluster) -> Iterator[Server]:
    """A server whose jobs go to the test cluster's namespace, through Kueue's LocalQueue."""
    k8s = {
        "kubeconfig": str(kubeconfig_path()),
        "namespace": cluster.namespace,
        "queue": cluster.local_queue,
        "ttl_seconds_after_finished": 300,
        **({"agent_image": AGENT_IMAGE} if AGENT_IMAGE else {}),
    }
    config = "\n".join(
        [
            "[server]",
            'backends = ["k8s"]',
            'default_backend = "k8s"',
            'images = ["qwex-test/*"]',
            "sse_keepalive = 0.3",
            "[k8s]",
            *(f"{key} = {json.dumps(value)}" for key, value in k8s.items()),
        ]
    )
    with started(tmp_path_factory.mktemp("dash-k8s"), config + "\n") as srv:
        yield srv


def test_a_run_kueue_holds_back_is_in_its_queue_with_kueues_words(
    server: Server, cluster: Cluster
) -> None:
    cpu = millicores(cluster.cluster_queue_quota("cpu")) / 1000
    spec = {"image": cluster.busybox, "resources": {"cpu": cpu}}
    blocker = job(server, "alice", "k8s-block", ["sh", "-c", "sleep 300"], **spec)
    with server.client("alice") as api:
        wait_status(api, blocker["id"], "running", timeout=180)
        waiting = job(server, "bob", "k8s-wait", ["echo", "admitted"], name="held-back", **spec)
        wait_status(api, waiting["id"], "queued", timeout=120)
    with signed_in(server, "vera") as vera:
        page = vera.get("/queue").text
        run = vera.get(f"/runs/{waiting['id']}").text
    heading = f"k8s · {cluster.local_queue}"
    assert heading in page, page
    section = page[page.index(heading) :]
    assert "held-back" in section and "insufficient unused quota" in section
    assert f"queue {cluster.local_queue}" in run  # the run's page names its LocalQueue too
    timeline = run[run.index('id="timeline"') :]
    assert "queued" in timeline and "insufficient unused quota" in timeline
