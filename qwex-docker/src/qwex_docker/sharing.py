"""A run directory shared with a container user other than the invoking one, never with others.

The container runs as the invoking user unless the job names another uid:gid or keeps the
image's own `USER` (`container.user = "image"`). That user must still write the run's record
and logs. It gets them through the invoking user's own group, which qwex adds to the
container's groups (`group_add`): the run directory becomes group-writable and setgid (2770,
so what the container creates there stays in that group and readable by the invoking user),
the logs 0660. Nothing is world-writable. On Debian, Ubuntu, Fedora and most Linux systems
each user has a private primary group named after them; a primary group shared with other
people would let them in too, so qwex refuses to share through it.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from qwex_core.errors import SpecError

DIR_MODE = 0o2770
FILE_MODE = 0o660


def check_private_group(uid: int, gid: int) -> None:
    """A `SpecError` saying what to do unless group `gid` is the private group of user `uid`."""
    try:
        user = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid)
    except KeyError:
        why = f"uid {uid} or gid {gid} has no name on this machine"
    else:
        others = sorted(set(group.gr_mem) - {user})
        if group.gr_name == user and not others:
            return
        why = f"your primary group {group.gr_name} is not yours alone" + (
            f" (members: {', '.join(others[:5])})" if others else ""
        )
    raise SpecError(
        "the container would run as another user than you (container.user), who writes the "
        "run's record and logs through your primary group; "
        f"{why}, so other users could change them. Run as yourself (unset container.user) or "
        "make your primary group a private one"
    )


def share_with_group(run_dir: Path, gid: int) -> None:
    """Give group `gid` write access to `run_dir` and the files in it (and nobody else)."""
    for path in [run_dir, *run_dir.iterdir()]:
        os.chown(path, -1, gid)
        path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)
