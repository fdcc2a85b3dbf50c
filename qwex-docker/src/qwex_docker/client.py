"""Connecting to the Docker daemon, and turning SDK exceptions into messages a user can act on.

The low-level `docker.APIClient` is used on purpose: the high-level
`containers.create` inspects the container again after creating it, an extra
round trip on every run. Its `version="auto"` asks the daemon for its API version
on every connection; `connect_reusing` remembers the answer per local socket (a
restarted or upgraded daemon makes a new socket, so the answer is asked again).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_agent.daemon import (
    DEFAULT_SOCKET,
    DaemonUnavailable,
    api_message,
    daemon_address,
    unreachable,
)
from qwex_core.timings import mark

if TYPE_CHECKING:
    import docker

    from qwex_docker.lean import Daemon

__all__ = [
    "DEFAULT_SOCKET",
    "DaemonUnavailable",
    "api_message",
    "connect",
    "connect_reusing",
    "daemon_address",
    "forget_version",
    "unreachable",
]


def connect(base_url: str | None, timeout: float) -> docker.APIClient:
    """A client whose daemon has answered, or `DaemonUnavailable` saying why and what to do."""
    return _connect(base_url, timeout, None)


def connect_reusing(base_url: str | None, timeout: float) -> tuple[docker.APIClient, bool]:
    """A client, without a round trip when the local socket's daemon told its API version
    before; True when that version was reused (the daemon has not answered yet: on an
    error, `forget_version` and `connect` again)."""
    address = daemon_address(base_url)
    tls = base_url is None and bool(os.environ.get("DOCKER_TLS_VERIFY"))
    identity = None if tls else socket_identity(address)
    known = _versions().get(address) if identity else None
    if known and known.get("socket") == identity and isinstance(known.get("version"), str):
        with contextlib.suppress(DaemonUnavailable):  # a version this SDK refuses: ask again
            return _connect(base_url, timeout, known["version"]), True
    client = _connect(base_url, timeout, None)
    if identity:
        _remember(address, {"socket": identity, "version": client.api_version})
    return client, False


def connect_lean(base_url: str | None, timeout: float) -> tuple[Daemon, bool] | None:
    """The local daemon that `qwex_docker.lean` speaks to, and True when its API version
    was remembered (as `connect_reusing` remembers it, per socket: on an error,
    `forget_version` and connect again); None when the SDK is needed (another address, TLS,
    an API older than `lean.MIN_VERSION`). `DaemonUnavailable` when asking the version fails."""
    from qwex_docker import lean

    address = daemon_address(base_url)
    tls = base_url is None and bool(os.environ.get("DOCKER_TLS_VERIFY"))
    path = lean.socket_path(address, tls)
    if path is None:
        return None
    identity = socket_identity(address)
    known = _versions().get(address) if identity else None
    reused = bool(
        known and known.get("socket") == identity and isinstance(known.get("version"), str)
    )
    daemon = lean.Daemon(path, known["version"] if reused and known else None, timeout)
    if not reused:
        try:
            daemon.version = daemon.api_version()
        except (OSError, lean.LeanError) as exc:
            raise DaemonUnavailable(unreachable(address, exc)) from None
        if identity:
            _remember(address, {"socket": identity, "version": daemon.version})
    if daemon.version is None or not lean.speaks(daemon.version):
        return None
    mark("docker-connected")
    return daemon, reused


def forget_version(base_url: str | None) -> None:
    """Ask the daemon its API version again on the next `connect_reusing`."""
    _remember(daemon_address(base_url), None)


def _connect(base_url: str | None, timeout: float, version: str | None) -> docker.APIClient:
    import_sdk()
    import docker
    from docker.errors import DockerException

    mark("docker-imported")
    address = daemon_address(base_url)
    try:
        if base_url is None and os.environ.get("DOCKER_TLS_VERIFY"):
            kwargs = docker.utils.kwargs_from_env()
            client = docker.APIClient(version="auto", timeout=int(timeout), **kwargs)
        else:
            client = docker.APIClient(
                base_url=address, version=version or "auto", timeout=int(timeout)
            )
    except DockerException as exc:
        raise DaemonUnavailable(unreachable(address, exc)) from None
    if address.startswith("unix://"):
        # No proxy, netrc or CA bundle applies to a local socket: do not look them up per call.
        client.trust_env = False
    mark("docker-connected")
    return client


def import_sdk() -> None:
    """Import the docker SDK, once per process, without Python's cyclic garbage collector.

    The import creates some 100,000 objects (modules, classes, compiled patterns) that live
    as long as the process. Collecting while they are made cost 5-9 ms of CPU on the path
    of every `qwex run -b docker`, and a young generation that large costs as much to
    collect afterwards; frozen (`gc.freeze`), later collections skip them and what existed
    before. Once per process, so a long-lived process (the server) freezes at most once.
    """
    if "docker.api.client" in sys.modules:
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        import docker  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def socket_identity(address: str) -> str | None:
    """Device, inode and change time of a local daemon socket, which change whenever the
    daemon creates it anew (a restart, an upgrade); None for other addresses."""
    if not address.startswith("unix://"):
        return None
    try:
        st = os.stat(address.removeprefix("unix://"))
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_ctime_ns}"


def _versions_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwex" / "docker-api-versions.json"


def _versions() -> dict[str, Any]:
    try:
        data = json.loads(_versions_file().read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(address: str, entry: dict[str, Any] | None) -> None:
    """Store (or drop, with None) what is known of the daemon at `address`; a cache that
    cannot be written is only a lost shortcut."""
    path = _versions_file()
    data = _versions()
    if entry is None and address not in data:
        return
    data.pop(address, None)
    if entry is not None:
        data[address] = entry
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
