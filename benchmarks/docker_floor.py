"""The floor of a `qwex run -b docker` (reference rows of cli_bench): no qwex code at all.

A Python that imports what qwex's CLI cannot do without (click, pydantic, pluggy, and
pydantic's model machinery, which validating a job needs), then creates and starts the
container over the daemon's socket as qwex's own start does (`qwex_docker.lean`), and,
unless `--detach`, waits for it to exit. The container removes itself (`AutoRemove`, as
qwex's do) and carries `LABEL` so that the bench can wait for its removal off the clock.

    python docker_floor.py IMAGE LABEL [--detach]
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
from typing import Any

import click  # noqa: F401
import pluggy  # noqa: F401
import pydantic.main  # noqa: F401

SOCKET = "/var/run/docker.sock"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self) -> None:
        super().__init__("localhost")

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(SOCKET)


def request(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    connection = UnixConnection()
    try:
        data = json.dumps(body) if body is not None else None
        connection.request(method, path, data, {"Content-Type": "application/json"})
        response = connection.getresponse()
        content = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {content[:200]!r}")
        return json.loads(content) if content else None
    finally:
        connection.close()


def main(image: str, label: str, detach: bool) -> None:
    key, _, value = label.partition("=")
    created = request(
        "POST",
        "/containers/create",
        {
            "Image": image,
            "Cmd": ["true"],
            "Labels": {key: value},
            "HostConfig": {"AutoRemove": True},
        },
    )
    request("POST", f"/containers/{created['Id']}/start")
    if not detach:
        request("POST", f"/containers/{created['Id']}/wait")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--detach" in sys.argv[3:])
