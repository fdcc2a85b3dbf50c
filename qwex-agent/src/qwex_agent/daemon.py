"""The Docker daemon as the agent image's builder sees it: its address, and its errors in words.

Shared with the docker backend (`qwex_docker.client` uses these), which adds its own
connection reuse for the path of every run; `qwex agent image` connects once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from qwex_core.errors import BackendError

if TYPE_CHECKING:
    import docker

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class DaemonUnavailable(BackendError):
    """The daemon is not running or its socket is not accessible."""


def daemon_address(base_url: str | None) -> str:
    """The address qwex uses: the config's, else DOCKER_HOST, else the local socket."""
    return base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(base_url: str | None, timeout: float) -> docker.APIClient:
    """A client whose daemon has answered, or `DaemonUnavailable` saying why and what to do."""
    import docker
    from docker.errors import DockerException

    address = daemon_address(base_url)
    try:
        if base_url is None and os.environ.get("DOCKER_TLS_VERIFY"):
            kwargs = docker.utils.kwargs_from_env()
            return docker.APIClient(version="auto", timeout=int(timeout), **kwargs)
        return docker.APIClient(base_url=address, version="auto", timeout=int(timeout))
    except DockerException as exc:
        raise DaemonUnavailable(unreachable(address, exc)) from None


def unreachable(address: str, exc: BaseException) -> str:
    """Why the daemon at `address` could not be reached, in words."""
    text = str(exc)
    path = address.removeprefix("unix://") if address.startswith("unix://") else None
    if path and ("FileNotFoundError" in text or "No such file" in text):
        return (
            f"the Docker daemon is not running: no socket at {path} (start dockerd, or point "
            "DOCKER_HOST / [tool.qwex.docker] base_url at a running daemon)"
        )
    if "PermissionError" in text or "Permission denied" in text:
        return (
            f"permission denied on the Docker socket {path or address}: add your user to the "
            "`docker` group (then log in again) or use a daemon you may access"
        )
    if "ConnectionRefused" in text or "Connection refused" in text:
        return f"the Docker daemon at {address} refused the connection: is dockerd running?"
    return f"cannot reach the Docker daemon at {address}: {text}"


def api_message(exc: Any) -> str:
    """The daemon's own explanation from an `APIError`, without the HTTP wrapping."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(explanation, bytes):
        explanation = explanation.decode("utf-8", "replace")
    return str(explanation or exc).strip()
