"""`helm install` of the server's chart into the real test cluster: the pod gets ready with
the image built offline, its tokens bootstrapped from a Secret answer through the Service's
pod (kubectl port-forward), its service account may do what the backend needs and nothing
beyond the namespace, and `helm uninstall` leaves none of the chart's objects behind."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from release_support import (
    BUSYBOX,
    JOBS_NAMESPACE,
    Release,
    installed,
    port_forward,
)

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def release(helm: Path) -> Iterator[Release]:
    """The chart installed with its data in an emptyDir (nothing here restarts it)."""
    with installed(helm, "--set", "persistence.enabled=false") as r:
        yield r


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
