"""API requests without the kubernetes client, for what `qwex run -d` sends.

Importing the kubernetes client costs about half a second of CPU in every process that
does (it builds every model class of the API at import), more than the three requests
a detached submit makes. A kubeconfig whose credentials are plain (a token or a token
file, a client certificate, the cluster's CA; or the in-cluster service account) is
read here and its requests are sent over the standard library's HTTPS, as JSON; any
other (an `exec` plugin, an `auth-provider`, a proxy) gets `None`, and the caller uses
the kubernetes client as before. Looking at runs still uses the client: its typed
objects are what `qwex_k8s.status` reads.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PLAIN_USER = {"token", "tokenFile", "client-certificate", "client-certificate-data",
              "client-key", "client-key-data"}  # fmt: skip
"""User keys this module knows how to send; a user with any other key is left to the client."""
PLAIN_CLUSTER = {"server", "certificate-authority", "certificate-authority-data",
                 "insecure-skip-tls-verify", "extensions"}  # fmt: skip
"""Cluster keys this module honours (`extensions` carry nothing a request needs)."""


def trace_request(method: str, url: str) -> None:
    """One line per API request on stderr (`QWEX_K8S_TRACE=1`), written whole, whichever
    way the request goes (here or through the kubernetes client)."""
    sys.stderr.write(f"qwex-k8s: {method} {url}\n")


METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
"""`Accept` for an answer of the object's metadata only (`PartialObjectMetadata`), or the
whole object from a server that cannot give that: the snapshot ConfigMap holds the
project's code, which a request that only adds an owner has no use for (a detached submit
of a project with 500 KB of incompressible data: 282.2 against 293.2 ms, medians of 15
alternated, load under 1)."""


class Refused(Exception):
    """The API server answered, outside 2xx: `status`, and its answer (`body`)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


@dataclass
class Lean:
    """Where the API server is and how to authenticate, read without the client."""

    host: str
    port: int
    prefix: str
    context: ssl.SSLContext | None
    """None: plain http (a local proxy such as `kubectl proxy`)."""
    token: str | None = None
    token_file: str | None = None
    """Read again for each request: a projected service-account token is rotated."""
    trace: bool = False

    def __post_init__(self) -> None:
        self._local = threading.local()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; the answer's JSON. `Refused` for an answer outside 2xx, `OSError`
        (or `http.client.HTTPException`) when there is no answer."""
        headers = {"Accept": accept, "User-Agent": "qwex-k8s"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        url = self.prefix + path
        if self.trace:
            scheme = "https" if self.context is not None else "http"
            trace_request(method, f"{scheme}://{self.host}:{self.port}{url}")
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more
            conn = self._connection(timeout)
            try:
                conn.request(method, url, body=data, headers=headers)
                answer = conn.getresponse()
                raw = answer.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        if answer.will_close:
            conn.close()
            self._local.conn = None
        text = raw.decode("utf-8", "replace")
        if not 200 <= answer.status <= 299:
            raise Refused(answer.status, answer.reason, text)
        out: dict[str, Any] = json.loads(text) if text else {}
        return out

    def _token(self) -> str | None:
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError:
                return self.token
        return self.token

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.context is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
            else:
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=timeout, context=self.context
                )
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn


def from_kubeconfig(data: dict[str, Any], context: dict[str, Any], base: Path) -> Lean | None:
    """A `Lean` for the kubeconfig's `context` (one entry of its `contexts`), or None when
    its user or cluster needs what only the kubernetes client does. Relative file paths
    are relative to the kubeconfig's folder `base`."""
    ctx = context.get("context") or {}
    cluster = _named(data.get("clusters"), ctx.get("cluster"), "cluster")
    user = _named(data.get("users"), ctx.get("user"), "user")
    if cluster is None or user is None:
        return None
    if set(cluster) - PLAIN_CLUSTER or set(user) - PLAIN_USER or not cluster.get("server"):
        return None
    try:
        return _lean(cluster, user, base)
    except (OSError, ValueError, ssl.SSLError):
        return None  # the client says what is wrong with it


def in_cluster(host: str, port: str, account: Path) -> Lean | None:
    """A `Lean` for the pod's service account, or None when it is not all there."""
    token, ca = account / "token", account / "ca.crt"
    if not (token.is_file() and ca.is_file()):
        return None
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=str(ca))
        return Lean(_host(host), int(port), "", context, token_file=str(token))
    except (OSError, ValueError, ssl.SSLError):
        return None


def _named(items: Any, name: Any, key: str) -> dict[str, Any] | None:
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            found = item.get(key)
            return found if isinstance(found, dict) else {}
    return None


def _lean(cluster: dict[str, Any], user: dict[str, Any], base: Path) -> Lean:
    url = urlsplit(str(cluster["server"]))
    if url.scheme not in ("https", "http") or not url.hostname:
        raise ValueError(f"unsupported server {cluster['server']!r}")
    context = None
    if url.scheme == "https":
        ca = _pem(cluster, "certificate-authority", base)
        if cluster.get("insecure-skip-tls-verify"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca is not None:  # the cluster's CA alone (the system's store costs 50 ms to load)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.load_verify_locations(cadata=ca.decode())
        else:
            context = ssl.create_default_context()
        cert = _pem(user, "client-certificate", base)
        key = _pem(user, "client-key", base)
        if cert is not None and key is not None:
            _load_chain(context, cert, key)
        elif cert is not None or key is not None:
            raise ValueError("a client certificate without its key, or a key without one")
    token_file = user.get("tokenFile")
    return Lean(
        _host(url.hostname),
        url.port or (443 if url.scheme == "https" else 80),
        url.path.rstrip("/"),
        context,
        token=user.get("token"),
        token_file=str(base / token_file) if token_file else None,
    )


def _host(host: str) -> str:
    return host.strip("[]")


def _pem(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    """The PEM a kubeconfig entry gives inline (`KEY-data`) or as a file (`KEY`)."""
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        return (base / str(entry[key])).read_bytes()
    return None


def _load_chain(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """`load_cert_chain` reads files only: the PEMs go through a private folder, removed
    at once (the kubernetes client writes them to temporary files too)."""
    with tempfile.TemporaryDirectory(prefix="qwex-k8s-") as tmp:
        paths = []
        for name, pem in (("cert.pem", cert), ("key.pem", key)):
            path = os.path.join(tmp, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            paths.append(path)
        context.load_cert_chain(paths[0], paths[1])


TIMES = ("_timestamp", "_time", "_at")
"""Endings of the fields the client's models hold as datetimes (`creation_timestamp`,
`last_transition_time`, `started_at`): given as RFC 3339 text in JSON."""


class Typed(dict[str, Any]):
    """An API object as JSON, read as the client's typed model reads: `pod.status.phase`,
    `pod.metadata.creation_timestamp` (a datetime), None for a field the answer lacks.
    Keys stay as the API spells them (`labels[...]`, `cond.get("type")`): it is a dict."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        head, *rest = name.split("_")
        value = self.get(head + "".join(part[:1].upper() + part[1:] for part in rest))
        if isinstance(value, str) and name.endswith(TIMES):
            return _when(value)
        return typed(value)


def typed(value: Any) -> Any:
    """`value` (JSON) with each object in it read as `Typed`."""
    if isinstance(value, dict) and not isinstance(value, Typed):
        return Typed(value)
    if isinstance(value, list):
        return [typed(item) for item in value]
    return value


def _when(text: str) -> Any:
    from datetime import datetime

    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text
