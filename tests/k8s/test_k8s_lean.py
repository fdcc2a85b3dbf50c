"""`qwex_k8s.lean` against the real API server: the requests `qwex run -d` sends without the
kubernetes client authenticate as a pod's service account does, and check the server's
certificate against the cluster's CA alone."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import certifi
import pytest
import yaml
from k8s_support import Cluster, kubeconfig_path
from kubernetes import client
from qwex_k8s.lean import Refused, in_cluster

pytestmark = [pytest.mark.k8s, pytest.mark.live]


def service_account(cluster: Cluster, where: Path, ca: bytes) -> Path:
    """A pod's service-account folder for the namespace's `default` account: a fresh token
    and the cluster's CA, as the kubelet mounts them."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    answer = cluster.core.create_namespaced_service_account_token(
        "default", cluster.namespace, request
    )
    assert answer.status is not None and answer.status.token
    where.mkdir()
    (where / "token").write_text(answer.status.token)
    (where / "ca.crt").write_bytes(ca)
    return where


def test_a_pods_service_account_is_who_the_server_sees(cluster: Cluster, tmp_path: Path) -> None:
    data = yaml.safe_load(kubeconfig_path().read_text())
    server = data["clusters"][0]["cluster"]
    ca = base64.b64decode(server["certificate-authority-data"])
    url = urlsplit(server["server"])
    assert url.hostname is not None
    lean = in_cluster(url.hostname, str(url.port), service_account(cluster, tmp_path / "sa", ca))
    assert lean is not None
    with pytest.raises(Refused) as refused:  # the default account may not read Secrets
        lean.request("GET", f"/api/v1/namespaces/{cluster.namespace}/secrets", timeout=30)
    assert refused.value.status == 403
    assert f"system:serviceaccount:{cluster.namespace}:default" in refused.value.body
    # the token is read for each request: a rotated one is what the next request sends
    (tmp_path / "sa" / "token").write_text("not-a-token")
    with pytest.raises(Refused) as refused:
        lean.request("GET", f"/api/v1/namespaces/{cluster.namespace}/secrets", timeout=30)
    assert refused.value.status == 401


def test_a_server_not_signed_by_the_clusters_ca_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    data = yaml.safe_load(kubeconfig_path().read_text())
    url = urlsplit(data["clusters"][0]["cluster"]["server"])
    assert url.hostname is not None
    strangers = Path(certifi.where()).read_bytes()  # the public CAs: none signed this cluster
    account = service_account(cluster, tmp_path / "sa", strangers)
    lean = in_cluster(url.hostname, str(url.port), account)
    assert lean is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        lean.request("GET", "/version", timeout=30)


@pytest.mark.parametrize("transport", ["lean", "kubernetes client"])
def test_owning_the_snapshot_does_not_send_the_code_back(
    cluster: Cluster, k8s_api: client.ApiClient, transport: str
) -> None:
    """Adding a Job to the owners of the snapshot ConfigMap (a request per submit) asks for
    the answer's metadata only: the ConfigMap holds the project's code, up to a MiB, which
    the API server otherwise sends back with every submit."""
    from qwex_k8s.client import Connection, connect, rest
    from qwex_k8s.lean import METADATA_ONLY
    from qwex_k8s.settings import K8sSettings

    settings = K8sSettings(kubeconfig=str(kubeconfig_path()), namespace=cluster.namespace)
    conn = connect(settings)
    if transport == "lean":
        assert conn.lean is not None
    else:
        conn = Connection(cluster.namespace, "test", lambda: k8s_api)
    name = f"qwex-test-metadata-{transport.replace(' ', '-')}"
    path = f"/api/v1/namespaces/{cluster.namespace}/configmaps"
    code = base64.b64encode(b"x" * 200_000).decode()
    body = {"metadata": {"name": name}, "binaryData": {"code.tar.gz": code}}
    try:
        made = rest(conn, "POST", path, body, accept=METADATA_ONLY, timeout=30)
        assert made["kind"] == "PartialObjectMetadata" and "binaryData" not in made
        patch = {"metadata": {"labels": {"qwex.dev/test": "owned"}}}
        merge = "application/strategic-merge-patch+json"
        answer = rest(
            conn, "PATCH", f"{path}/{name}", patch, content_type=merge, accept=METADATA_ONLY
        )
        assert answer["kind"] == "PartialObjectMetadata" and "binaryData" not in answer
        assert answer["metadata"]["labels"] == {"qwex.dev/test": "owned"}
        whole = rest(conn, "PATCH", f"{path}/{name}", patch, content_type=merge)
        assert whole["binaryData"]["code.tar.gz"] == code  # without it: the whole object
    finally:
        cluster.core.delete_namespaced_config_map(name, cluster.namespace)
