"""Fixtures for the Kubernetes tests: a real cluster with Kueue, nothing mocked.

Which cluster: see `k8s_support.kubeconfig_path` (QWEX_K8S_KUBECONFIG, else the test cluster
that `nox -s cluster -- up` starts). Without one, the tests skip on a developer machine (one
summary line saying how to start it) and FAIL under CI (env `CI` set), where `.ci/run`
starts the cluster.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_support import HOW_TO, Cluster, kubeconfig_path, new_client
from kubernetes import client

HERE = Path(__file__).parent


def cluster_problem() -> str | None:
    """Why the cluster cannot be used, or None when it answers."""
    path = kubeconfig_path()
    if not path.is_file():
        return f"no Kubernetes cluster (no kubeconfig at {path})"
    try:
        api = new_client(path)
    except Exception as exc:  # unreadable (root's 0600 file) or invalid
        return f"cannot use the kubeconfig {path} ({exc})"
    with contextlib.closing(api):
        try:
            client.VersionApi(api).get_code(_request_timeout=10)
        except Exception as exc:  # any failure to connect means "no usable cluster"
            return f"the Kubernetes cluster of {path} does not answer ({exc.__class__.__name__})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Off CI, skip this folder's cluster tests (marked `k8s`) by a mark when there is no
    cluster (one summary line); the offline ones (manifests, status mapping) always run."""
    mine = [
        item
        for item in items
        if HERE in item.path.parents and item.get_closest_marker("k8s") is not None
    ]
    if not mine or os.environ.get("CI"):
        return
    problem = cluster_problem()
    if problem:
        skip = pytest.mark.skip(reason=f"{problem}: {HOW_TO}")
        for item in mine:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def k8s_api() -> Iterator[client.ApiClient]:
    """A client of the cluster, checked to answer; under CI a missing cluster is a failure."""
    problem = cluster_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}; under CI this is an error ({HOW_TO})", pytrace=False)
        pytest.skip(f"{problem}: {HOW_TO}")
    with contextlib.closing(new_client(kubeconfig_path())) as api:
        yield api


@pytest.fixture
def cluster(k8s_api: client.ApiClient) -> Iterator[Cluster]:
    """The cluster, with the Jobs a test created deleted after it."""
    c = Cluster(api=k8s_api)
    yield c
    c.cleanup()
