"""Connecting to the cluster (kubeconfig, context, in-cluster), and API errors in words.

`trace` (`QWEX_K8S_TRACE=1`) prints every API request qwex makes to stderr (method and path),
which is also how the benchmark counts requests per run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import BackendError

from qwex_k8s.lean import Lean, Refused, from_kubeconfig, in_cluster, trace_request

__all__ = ["Connection", "Refused", "api_message", "connect", "is_unreachable", "rest"]

if TYPE_CHECKING:
    from kubernetes import client

    from qwex_k8s.settings import K8sSettings

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ClusterUnavailable(BackendError):
    """No cluster is configured, or it does not answer."""


class Connection:
    """The cluster: its namespace and context, `lean` requests when the kubeconfig allows
    them (`qwex_k8s.lean`), and the kubernetes client's `api`, made on first use."""

    def __init__(
        self,
        namespace: str,
        context: str,
        make_api: Callable[[], client.ApiClient],
        lean: Lean | None = None,
    ) -> None:
        self.namespace = namespace
        self.context = context
        """The kubeconfig context, or `in-cluster`."""
        self.lean = lean
        self._make_api = make_api
        self._api: client.ApiClient | None = None

    @property
    def api(self) -> client.ApiClient:
        if self._api is None:
            self._api = self._make_api()
        return self._api


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
    """A client for the configured cluster, or `ClusterUnavailable` saying what to do. The
    kubernetes client is imported when `api` is first used (see `qwex_k8s.lean`)."""
    path = kubeconfig_file(settings)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if path is None and host:
        namespace = settings.namespace or _read(SERVICE_ACCOUNT / "namespace") or "default"
        port = os.environ.get("KUBERNETES_SERVICE_PORT") or "443"
        lean = _traced(in_cluster(host, port, SERVICE_ACCOUNT), settings)
        return Connection(namespace, "in-cluster", lambda: _in_cluster_api(settings), lean)
    if path is None:
        raise ClusterUnavailable(
            "no Kubernetes cluster configured: set [tool.qwex.k8s] kubeconfig (or KUBECONFIG), "
            "or create ~/.kube/config"
        )
    if not os.path.isfile(path):
        raise ClusterUnavailable(
            f"the kubeconfig {path} does not exist ([tool.qwex.k8s] kubeconfig)"
        )
    data = _kubeconfig(path)
    contexts = [c for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    wanted = settings.context or data.get("current-context")
    chosen = next((c for c in contexts if c["name"] == wanted), None)
    if chosen is None:
        names = ", ".join(str(c["name"]) for c in contexts) or "none"
        if settings.context:
            raise ClusterUnavailable(
                f"no context {settings.context!r} in {path} (contexts: {names}); fix "
                "[tool.qwex.k8s] context"
            )
        raise ClusterUnavailable(
            f"cannot use the kubeconfig {path}: no current-context among its contexts ({names})"
        )
    name = str(chosen["name"])
    inner: Any = chosen.get("context")
    given = inner.get("namespace") if isinstance(inner, dict) else None
    namespace = settings.namespace or str(given or "default")
    lean = from_kubeconfig(data, chosen, Path(path).resolve().parent)
    return Connection(
        namespace, name, lambda: _kubeconfig_api(settings, path, name), _traced(lean, settings)
    )


def _kubeconfig(path: str) -> dict[str, Any]:
    """The kubeconfig as data; `ClusterUnavailable` when it is not YAML of a mapping."""
    import yaml

    try:
        with open(path) as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise ClusterUnavailable(f"cannot use the kubeconfig {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ClusterUnavailable(f"cannot use the kubeconfig {path}: not a kubeconfig")
    return data


def _traced(lean: Lean | None, settings: K8sSettings) -> Lean | None:
    if lean is not None:
        lean.trace = settings.trace
    return lean


def _kubeconfig_api(settings: K8sSettings, path: str, context: str) -> client.ApiClient:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    config: Any = _config_module()  # untyped in the client
    configuration = client.Configuration()
    try:
        config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        raise ClusterUnavailable(f"cannot use the kubeconfig {path}: {exc}") from None
    return _client(configuration, settings.trace)


def _in_cluster_api(settings: K8sSettings) -> client.ApiClient:
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    config: Any = _config_module()
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise ClusterUnavailable(f"cannot use the in-cluster service account: {exc}") from None
    return _client(configuration, settings.trace)


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
            trace_request(method, url)
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
    conn: Connection,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    accept: str = "application/json",
    timeout: float | None = None,
) -> dict[str, Any]:
    """One API request to `conn`'s cluster, the answer as a dict (`accept`: see
    `lean.METADATA_ONLY`).

    For the calls `qwex run` makes before the Job exists: over `conn.lean` when the
    kubeconfig allows (no kubernetes client imported at all), else through the client's
    `ApiClient` (its auth, TLS and tracing), never its typed API classes. An answer saying
    no is a `Refused`; no answer at all is a `BackendError`."""
    if conn.lean is not None:
        try:
            return conn.lean.request(
                method, path, body, content_type=content_type, accept=accept, timeout=timeout
            )
        except Refused:
            raise
        except (OSError, HTTPException) as exc:
            raise BackendError(f"the Kubernetes API server does not answer: {exc}") from None
    api: Any = conn.api  # untyped calls below
    params = api.param_serialize(
        method=method,
        resource_path=path,
        header_params={"Accept": accept, "Content-Type": content_type},
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
    text = data.decode("utf-8", "replace")
    if not 200 <= response.status <= 299:
        raise Refused(response.status, str(response.reason), text)
    out: dict[str, Any] = json.loads(data) if data else {}
    return out
