"""The floor of a `qwex run -b docker` (reference rows of cli_bench): no qwex CLI code.

A Python that imports what qwex's CLI cannot do without (click, pydantic, pluggy, and
pydantic's model machinery, which validating a job needs), then creates and starts the
container over the daemon's socket through qwex's own transport (`qwex_docker.lean`: a
request written on the socket, without `http.client`), and, unless `--detach`, waits for
it to exit (the daemon's `wait`). The container removes itself (`AutoRemove`, as
qwex's do) and carries `LABEL` so that the bench can wait for its removal off the clock.

    python docker_floor.py IMAGE LABEL [--detach]
"""

from __future__ import annotations

import sys

import click  # noqa: F401
import pluggy  # noqa: F401
import pydantic.main  # noqa: F401
from qwex_docker.lean import Daemon

SOCKET = "/var/run/docker.sock"


def main(image: str, label: str, detach: bool) -> None:
    key, _, value = label.partition("=")
    daemon = Daemon(SOCKET, None, 30.0)
    created = daemon.request(
        "POST",
        "/containers/create",
        {
            "Image": image,
            "Cmd": ["true"],
            "Labels": {key: value},
            "HostConfig": {"AutoRemove": True},
        },
    )
    daemon.request("POST", f"/containers/{created['Id']}/start")
    if not detach:
        daemon.request("POST", f"/containers/{created['Id']}/wait")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--detach" in sys.argv[3:])
