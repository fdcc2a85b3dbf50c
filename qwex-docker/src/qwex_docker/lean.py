"""The three requests that start a run's container, sent without the docker SDK.

Importing the SDK (its modules, `requests`, `urllib3`, `http.cookiejar`...) took about
200 ms of CPU on the path of every `qwex run -b docker` (QWEX_TIMINGS, `record-created`
to `docker-imported`: 196-201 ms in three runs at load 10), more than the rest of the CLI,
while starting the container takes three requests: inspect the image, create the
container, start it. For a daemon reached on a local socket without TLS these are sent
by hand (`exchange`), with the body the SDK sends for the same arguments of
`create_container` and `create_host_config` (tests/docker/test_docker_lean.py compares the
two for every option the backend uses); another address (`tcp://`, TLS, `ssh://`), an API
older than `MIN_VERSION` or a pull use the SDK as before, and so does everything after the
start (probes, signals, `qwex gc`): a foreground run that ends before its first probe, and
every detached one, never imports it.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

MIN_VERSION = (1, 40)
"""The oldest Engine API this path speaks: every field the backend sets (device requests
the newest) exists from 1.40 (Docker 19.03) on."""


class LeanError(Exception):
    """The daemon answered with an error; `explanation` is its own message (as the SDK's
    `APIError.explanation`, so `qwex_agent.daemon.api_message` reads both)."""

    def __init__(self, status: int, explanation: str) -> None:
        super().__init__(f"{status}: {explanation}")
        self.status = status
        self.explanation = explanation


def exchange(path: str, request: bytes, timeout: float) -> tuple[int, str, bytes]:
    """(status, reason, body) of one HTTP/1.1 `request` sent to the unix socket `path` on a
    connection of its own, which the daemon closes after answering (`Connection: close`).

    Hand-written instead of `http.client`, whose import (the `email` package it parses
    headers with) cost 27 ms of CPU at load 14 against 70 for the twin's imports (11
    alternated runs): a start reads three short answers, each a status line, headers
    and a body that is either whole or chunked."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request)
        parts = []
        while chunk := sock.recv(65536):
            parts.append(chunk)
    answer = b"".join(parts)
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not sep or not version.startswith("HTTP/") or not code.isdigit():
        raise OSError(f"not an HTTP answer from {path}: {answer[:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _unchunked(body)
    elif "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return int(code), reason, body


def _unchunked(data: bytes) -> bytes:
    """The body of a chunked answer: size in hex, CRLF, that many bytes, CRLF... then 0."""
    out: list[bytes] = []
    at = 0
    while True:
        end = data.index(b"\r\n", at)
        size = int(data[at:end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2 : end + 2 + size])
        at = end + 2 + size + 2


def socket_path(address: str, tls: bool) -> str | None:
    """The socket file of a daemon this module can reach, or None (use the SDK)."""
    if tls or not address.startswith("unix://"):
        return None
    return address.removeprefix("unix://")


def speaks(version: str) -> bool:
    """Whether the daemon's API `version` ("1.47") is one this module speaks."""
    try:
        major, minor = (int(part) for part in version.split("."))
    except ValueError:
        return False
    return (major, minor) >= MIN_VERSION


class Daemon:
    """The daemon at the socket `path` (a connection per request), speaking API `version`
    (None: only `api_version` may be asked). `OSError` when it cannot be reached."""

    def __init__(self, path: str, version: str | None, timeout: float) -> None:
        self.version = version
        self.path = path
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """The decoded JSON answer (None when empty); `LeanError` for an error status."""
        url = path if self.version is None else f"/v{self.version}{path}"
        if params:
            url += "?" + urlencode(params)
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {url} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += f"Content-Length: {len(data)}\r\n\r\n"
        status, reason, payload = exchange(self.path, head.encode() + data, self.timeout)
        if status >= 400:
            raise LeanError(status, _message(payload, reason))
        return json.loads(payload) if payload.strip() else None

    def api_version(self) -> str:
        """The daemon's own API version (what the SDK's `version="auto"` asks for)."""
        answer = self.request("GET", "/version")
        version = answer.get("ApiVersion") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            raise LeanError(500, f"the daemon told no API version: {answer!r}")
        return version

    def inspect_image(self, image: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.request("GET", f"/images/{quote(image, safe='/:')}/json")
        return answer

    def create_container(self, create: dict[str, Any], host_config: dict[str, Any]) -> str:
        """The new container's id."""
        params, body = create_request(create, host_config)
        answer = self.request("POST", "/containers/create", body, params)
        return str(answer["Id"])

    def start(self, container_id: str) -> None:
        self.request("POST", f"/containers/{quote(container_id, safe='/:')}/start")

    def remove_container(self, container_id: str) -> None:
        """Force-remove the container and its anonymous volumes (`docker rm -fv`)."""
        path = f"/containers/{quote(container_id, safe='/:')}"
        self.request("DELETE", path, params={"v": "True", "force": "True"})


def _message(payload: bytes, reason: str) -> str:
    try:
        message = json.loads(payload).get("message")
    except (ValueError, AttributeError):
        message = None
    if isinstance(message, str) and message:
        return message
    return payload.decode("utf-8", "replace").strip() or reason


HOST_CONFIG_KEYS = {
    "auto_remove": "AutoRemove",
    "mounts": "Mounts",
    "network_mode": "NetworkMode",
    "group_add": "GroupAdd",
    "nano_cpus": "NanoCpus",
    "mem_limit": "Memory",
    "memswap_limit": "MemorySwap",
}
"""`create_host_config` arguments the backend passes (`qwex_docker.spec.create_args`), by the
name of the field the SDK sends; `device_requests` is made whole below."""


def create_request(
    create: dict[str, Any], host_config: dict[str, Any]
) -> tuple[dict[str, str], dict[str, Any]]:
    """(query, body) of `POST /containers/create`, as the SDK sends them for
    `create_container(host_config=create_host_config(**host_config), **create)`: fields it
    would send as null are left out, as its `_post_json` does. An argument not known here
    is a `ValueError`, never dropped from the request (the docker tests meet it first)."""
    unknown = set(host_config) - set(HOST_CONFIG_KEYS) - {"device_requests"}
    unknown |= set(create) - CREATE_KEYS
    if unknown:
        raise ValueError(f"not sent without the SDK: {sorted(unknown)}")
    host: dict[str, Any] = {}
    for name, field in HOST_CONFIG_KEYS.items():
        value = host_config.get(name)
        # The SDK leaves out a false `auto_remove`, an empty `group_add`, a zero `nano_cpus`.
        if value is not None and (value or name in ("mounts", "mem_limit", "memswap_limit")):
            host[field] = value
    if "NetworkMode" not in host:
        host["NetworkMode"] = "default"
    if host_config.get("device_requests"):
        host["DeviceRequests"] = [
            {
                "Driver": request.get("Driver", ""),
                "Count": request.get("Count", 0),
                "DeviceIDs": request.get("DeviceIDs", []),
                "Capabilities": request.get("Capabilities", []),
                "Options": request.get("Options", {}),
            }
            for request in host_config["device_requests"]
        ]
    environment = create.get("environment") or {}
    body: dict[str, Any] = {
        "User": create.get("user"),
        "Tty": bool(create.get("tty")),
        "OpenStdin": bool(create.get("stdin_open")),
        "StdinOnce": False,
        "AttachStdin": False,
        "AttachStdout": not create.get("detach"),
        "AttachStderr": not create.get("detach"),
        "Env": [f"{name}={value}" for name, value in environment.items()],
        "Cmd": create.get("command"),
        "Image": create["image"],
        "NetworkDisabled": False,
        "Entrypoint": create.get("entrypoint"),
        "WorkingDir": create.get("working_dir"),
        "HostConfig": host,
        "Labels": create.get("labels"),
        "StopTimeout": create.get("stop_timeout"),
    }
    params = {"name": create["name"]} if create.get("name") else {}
    return params, {k: v for k, v in body.items() if v is not None}


CREATE_KEYS = {
    "image",
    "name",
    "entrypoint",
    "command",
    "working_dir",
    "user",
    "environment",
    "labels",
    "stop_timeout",
    "detach",
    "stdin_open",
    "tty",
}
"""`create_container` arguments the backend passes (`qwex_docker.spec.create_args`)."""
