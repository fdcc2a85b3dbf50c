"""Connecting to the cluster (kubeconfig, context, in-cluster), and API errors in words.

`trace` (`QWEX_K8S_TRACE=1`) prints every API request qwex makes to stderr (method and path),
which is also how the benchmark counts requests per run.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import BackendError

if TYPE_CHECKING:
    from kubernetes import client

    from qwex_k8s.settings import K8sSettings

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ClusterUnavailable(BackendError):
    """No cluster is configured, or it does not answer."""


@dataclass
class Connection:
    api: client.ApiClient
    namespace: str
    context: str
    """The kubeconfig context, or `in-cluster`."""


def kubeconfig_file(settings: K8sSettings) -> str | None:
    """The kubeconfig qwex reads: the setting's, else KUBECONFIG's first, else ~/.kube/config."""
    if settings.kubeconfig:
        return os.path.expanduser(settings.kubeconfig)
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def connect(settings: K8sSettings) -> Connection:
    """A client for the configured cluster, or `ClusterUnavailable` saying what to do."""
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    config: Any = _config_module()  # untyped in the client
    path = kubeconfig_file(settings)
    configuration = client.Configuration()
    if path is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=configuration)
        except ConfigException as exc:
            raise ClusterUnavailable(f"cannot use the in-cluster service account: {exc}") from None
        namespace = settings.namespace or _read(SERVICE_ACCOUNT / "namespace") or "default"
        return Connection(_client(configuration, settings.trace), namespace, "in-cluster")
    if path is None:
        raise ClusterUnavailable(
            "no Kubernetes cluster configured: set [tool.qwex.k8s] kubeconfig (or KUBECONFIG), "
            "or create ~/.kube/config"
        )
    if not os.path.isfile(path):
        raise ClusterUnavailable(
            f"the kubeconfig {path} does not exist ([tool.qwex.k8s] kubeconfig)"
        )
    try:
        contexts, active = config.list_kube_config_contexts(config_file=path)
        chosen = active
        if settings.context:
            chosen = next((c for c in contexts if c["name"] == settings.context), None)
            if chosen is None:
                names = ", ".join(c["name"] for c in contexts) or "none"
                raise ClusterUnavailable(
                    f"no context {settings.context!r} in {path} (contexts: {names}); fix "
                    "[tool.qwex.k8s] context"
                )
        config.load_kube_config(
            config_file=path,
            context=chosen["name"],
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise ClusterUnavailable(f"cannot use the kubeconfig {path}: {exc}") from None
    namespace = settings.namespace or chosen.get("context", {}).get("namespace") or "default"
    return Connection(_client(configuration, settings.trace), namespace, str(chosen["name"]))


def _config_module() -> Any:
    from kubernetes import config

    return config


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _client(configuration: Any, trace: bool) -> client.ApiClient:
    from kubernetes import client

    if not trace:
        return client.ApiClient(configuration)

    class Traced(client.ApiClient):
        """Prints each request, for debugging and for counting requests in the benchmark."""

        def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            sys.stderr.write(f"qwex-k8s: {method} {url}\n")
            return super().call_api(method, url, *args, **kwargs)

    return Traced(configuration)


def api_message(exc: Any) -> str:
    """The API server's own message from an `ApiException`, without the HTTP dump."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    reason = getattr(exc, "reason", None)
    status = getattr(exc, "status", None)
    return f"{status} {reason}".strip() if status or reason else str(exc)


def is_unreachable(exc: BaseException) -> bool:
    """A failure to reach the API server at all (as opposed to an answer saying no)."""
    from urllib3.exceptions import HTTPError

    return isinstance(exc, (HTTPError, OSError))


def rest(
    api: Any,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    timeout: float | None = None,
) -> dict[str, Any]:
    """One API request through `api` (its auth, TLS and tracing), the answer as a dict.

    For the few calls `qwex run` makes before the Job exists: the client's typed API
    classes (CoreV1Api, BatchV1Api) take a second or more to import, on every run.
    An answer saying no is an `ApiException`; no answer at all is a `BackendError`."""
    from kubernetes.client.exceptions import ApiException

    params = api.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Accept": "application/json", "Content-Type": content_type},
        body=body,
        auth_settings=["BearerToken"],
    )
    try:
        response = api.call_api(*params, _request_timeout=timeout)
        response.read()
    except Exception as exc:
        if is_unreachable(exc):
            raise BackendError(f"the Kubernetes API server does not answer: {exc}") from None
        raise
    data = response.data or b""
    if not 200 <= response.status <= 299:
        raise ApiException.from_response(
            http_resp=response, body=data.decode("utf-8", "replace"), data=None
        )
    out: dict[str, Any] = json.loads(data) if data else {}
    return out
