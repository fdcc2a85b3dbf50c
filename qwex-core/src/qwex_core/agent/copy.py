"""`qwex agent copy DEST`: the frozen agent copies its own bundle (for an init container).

See `qwex_core.agent.main.COPY_VERB` for how Kubernetes uses it. The bundle is
copied into DEST/.tmp-<pid> first, then each top-level entry is renamed into
DEST, `bin/` last: a container that finds DEST/bin/qwex finds all of it.
"""

from __future__ import annotations

import os
import shutil
import sys

USAGE = "usage: qwex agent copy DEST\n"
ERROR = 125
"""Exit code when the copy fails (the agent's own error code)."""


def copy_bundle(bundle: str, dest: str) -> list[str]:
    """Copy the bundle directory `bundle` into `dest` (created if needed); return its entries."""
    os.makedirs(dest, exist_ok=True)
    tmp = os.path.join(dest, f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(bundle, tmp, symlinks=True)
    entries = sorted(os.listdir(tmp), key=lambda name: (name == "bin", name))
    for name in entries:
        target = os.path.join(dest, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)  # a restarted init container: replace what the last one left
        os.replace(os.path.join(tmp, name), target)
    os.rmdir(tmp)
    return entries


def main(argv: list[str], bundle: str) -> int:
    """`argv` follows `agent copy`; `bundle` is the directory the running launcher lives in."""
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write(USAGE)
        return 2
    dest = argv[0]
    if os.path.realpath(dest) == os.path.realpath(bundle):
        sys.stderr.write(f"qwex: the agent is already in {dest}\n")
        return 0
    try:
        entries = copy_bundle(bundle, dest)
    except OSError as exc:
        sys.stderr.write(f"qwex: cannot copy the agent from {bundle} to {dest}: {exc}\n")
        return ERROR
    sys.stderr.write(f"qwex: copied the agent ({', '.join(entries)}) to {dest}\n")
    return 0
