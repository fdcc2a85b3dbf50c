"""Two server replicas sharing one PostgreSQL (in the cluster, the image built offline by
`nox -s postgres_image`) and one data claim: 50 jobs submitted half to each replica, each
runs exactly once (one Kubernetes Job per job), and both replicas ran some."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from release_support import BUSYBOX, JOBS_NAMESPACE, Release, installed, jobs_with, port_forward

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]
"""PostgreSQL and the install (up to 360 s), then 50 jobs (up to 300 s)."""

POSTGRES_IMAGE = "qwex.local/qwex-postgres:15"
"""noxfile.POSTGRES_IMAGE, loaded into the node by `nox -s postgres_image`."""
JOBS = 50
HOST = "qwex.dev/host"
"""qwex_k8s.manifests.ANNOTATION_HOST: the host name of the server that made a Job."""


def postgres(r: Release) -> None:
    """PostgreSQL in the release's namespace and the Secret `qwex-db` with its URL. The URL
    names the pod's address: the test cluster has no kube-proxy for a Service's."""
    password = secrets.token_urlsafe(16)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "postgres", "labels": {"app": "postgres"}},
        "spec": {
            "containers": [
                {
                    "name": "postgres",
                    "image": POSTGRES_IMAGE,
                    "imagePullPolicy": "Never",
                    "env": [{"name": "POSTGRES_PASSWORD", "value": password}],
                    "ports": [{"containerPort": 5432}],
                    "readinessProbe": {
                        "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-U", "qwex"]},
                        "periodSeconds": 1,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    r.apply(json.dumps(pod))
    ready = r.kube("wait", "--for=condition=Ready", "pod/postgres", "--timeout=120s", timeout=130)
    assert ready.returncode == 0, ready.stderr + r.kube("describe", "pod", "postgres").stdout
    ip = r.kube("get", "pod", "postgres", "-o", "jsonpath={.status.podIP}").stdout.strip()
    url = f"postgresql+psycopg://qwex:{password}@{ip}:5432/postgres"
    made = r.kube("create", "secret", "generic", "qwex-db", f"--from-literal=url={url}")
    assert made.returncode == 0, made.stderr


@pytest.fixture(scope="module")
def release(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    with installed(
        helm,
        "--set", "replicaCount=2", "--set", "database.existingSecret=qwex-db",
        "--set", "server.concurrency=8",
        data=tmp_path_factory.mktemp("shared-data"),
        prepare=postgres,
    ) as r:  # fmt: skip
        yield r


def test_fifty_jobs_through_two_replicas_each_run_exactly_once(release: Release) -> None:
    marker = f"once-{uuid.uuid4().hex[:12]}"
    headers = {"Authorization": f"Bearer {release.token}"}
    with contextlib.ExitStack() as stack:
        apis = [
            stack.enter_context(httpx.Client(base_url=url, headers=headers, timeout=30))
            for url in (
                stack.enter_context(port_forward(release, f"pod/{release.fullname}-{i}"))
                for i in (0, 1)
            )
        ]
        ids: dict[str, int] = {}
        for i in range(JOBS):
            job = apis[i % 2].post(
                "/jobs",
                json={
                    "submission_id": uuid.uuid4().hex,
                    "command": ["sh", "-c", f"echo {marker} {i}"],
                    "image": BUSYBOX,
                },
            )
            assert job.status_code == 201, job.text
            ids[job.json()["id"]] = i
        deadline = time.monotonic() + 300
        final: dict[str, dict[str, Any]] = {}
        while len(final) < JOBS:
            assert time.monotonic() < deadline, f"{JOBS - len(final)} jobs not final in 300 s"
            for job_id in set(ids) - set(final):
                seen = apis[0].get(f"/jobs/{job_id}").json()
                if seen["finished_at"] is not None:
                    final[job_id] = seen
            time.sleep(2)
        assert {j["status"] for j in final.values()} == {"succeeded"}, final
        for job_id, i in ids.items():
            logs = apis[1].get(f"/jobs/{job_id}/logs").json()
            assert logs["data"] == f"{marker} {i}\n"
    made = jobs_with(release, marker)
    ran = sorted(
        int(m.group(1))
        for j in made
        if (m := re.search(rf"{marker} (\d+)", json.dumps(j["spec"]["template"]["spec"])))
    )
    assert ran == list(range(JOBS))  # one Kubernetes Job for each, none twice
    hosts = {j["metadata"]["annotations"][HOST] for j in made}
    assert hosts == {f"{release.fullname}-0", f"{release.fullname}-1"}  # both replicas ran jobs
    release.kube("delete", "jobs", "-n", JOBS_NAMESPACE, *(j["metadata"]["name"] for j in made))
