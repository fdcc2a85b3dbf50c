"""Who made a backend's object: a token unique to one project's run store on one machine.

A Job or container left in a shared namespace or daemon may be a teammate's: the
same host name is no proof (two VMs, two containers, a reused name), nor is a run
folder that is missing here (the project may have moved while its run goes on).
So every object a backend creates carries `owner_token(project)`: a hash of a random
id kept in the project's `.qwex/store-id` and of this machine's id. `qwex gc` touches
an object only when the project it names holds that same id on this same machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
from pathlib import Path

STORE_ID_FILE = "store-id"
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def machine_id() -> str:
    """This machine's id (systemd's), or its host name where it has none (a container)."""
    for path in MACHINE_ID_FILES:
        with contextlib.suppress(OSError):
            text = Path(path).read_text().strip()
            if text:
                return text
    return socket.gethostname()


def _store_id(project_dir: Path, *, create: bool) -> str | None:
    path = project_dir / ".qwex" / STORE_ID_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        if not create:
            return None
        return _create_store_id(path)
    except OSError:
        return None
    with os.fdopen(fd) as fh:
        text = fh.read(200).strip()
    return text or None


def _create_store_id(path: Path) -> str | None:
    """Made once, exclusively: two qwex processes starting the first runs agree on one id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = secrets.token_hex(16)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return _store_id(path.parent.parent, create=False)
    with os.fdopen(fd, "w") as fh:
        fh.write(new + "\n")
    return new


def owner_token(project_dir: Path, *, create: bool = True) -> str | None:
    """The token a backend puts on what it creates for `project_dir`'s runs; None when the
    project has no store id yet and `create` is false (then nothing there is its own)."""
    store = _store_id(Path(project_dir), create=create)
    if store is None:
        return None
    return hashlib.sha256(f"{machine_id()}\n{store}".encode()).hexdigest()[:32]


def is_ours(project: str | None, token: str | None) -> bool:
    """Whether an object labelled with `project` and owner `token` was made by that project's
    run store on this machine (never creating anything to find out)."""
    if not project or not token:
        return False
    return owner_token(Path(project), create=False) == token
