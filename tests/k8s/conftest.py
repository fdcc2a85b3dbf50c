"""Fixtures for the Kubernetes tests: a real cluster with Kueue, nothing mocked.

Which cluster: see `k8s_support.kubeconfig_path` (QWEX_K8S_KUBECONFIG, else the test cluster
that `nox -s cluster -- up` starts). Without one, the tests skip on a developer machine and
FAIL under CI (env `CI` set), where `.ci/run` starts the cluster.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from k8s_support import HOW_TO, Cluster, kubeconfig_path
from kubernetes import client, config


def unavailable(message: str) -> None:
    """Skip on a laptop, fail under CI: a cluster test must never silently not run in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI this is an error ({HOW_TO})", pytrace=False)
    pytest.skip(f"{message}: {HOW_TO}")


@pytest.fixture(scope="session")
def k8s_api() -> Iterator[client.ApiClient]:
    """A client of the cluster, checked to answer."""
    path = kubeconfig_path()
    if not path.is_file():
        unavailable(f"no Kubernetes cluster (no kubeconfig at {path})")
    try:
        api = config.new_client_from_config(config_file=str(path))
    except Exception as exc:  # unreadable (root's 0600 file) or invalid
        unavailable(f"cannot use the kubeconfig {path} ({exc})")
    try:
        client.VersionApi(api).get_code(_request_timeout=10)
    except Exception as exc:  # any failure to connect means "no usable cluster"
        api.close()
        unavailable(f"the Kubernetes cluster of {path} does not answer ({exc.__class__.__name__})")
    yield api
    api.close()


@pytest.fixture
def cluster(k8s_api: client.ApiClient) -> Iterator[Cluster]:
    """The cluster, with the Jobs a test created deleted after it."""
    c = Cluster(api=k8s_api)
    yield c
    c.cleanup()
