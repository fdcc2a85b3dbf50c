"""Running things as the unprivileged local users CI creates (`.ci/setup-users.sh`).

The tests run as root with pyenv's Python, whose files under /root no other user can reach:
what runs as `qwex-user` gets its own venv (Debian's `/usr/bin/python3`) with qwex installed
the way a user installs it (`user_venv`). Without the users, or without `runuser`, the tests
that need them skip on a laptop and fail under CI (env `CI`), as the Docker tests do.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

USER = "qwex-user"
"""In the `docker` group: runs local and Docker jobs."""
OTHER = "qwex-other"
"""In no special group: another person on the same machine."""
BUSYBOX = "qwex-test/busybox"
IMAGE_WITH_USER = "qwex-test/busybox-user"
"""Made from BUSYBOX by the tests, with its own USER IMAGE_UID (no user of this machine)."""
IMAGE_UID = 4321
REPO = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
HOW_TO = "run `.ci/setup-users.sh` as root (or `.ci/run`)"
_SKIP_COPY = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".nox", ".venv", "build", "dist", "*.egg-info", ".qwex"
)


def unavailable(message: str) -> None:
    """Skip on a laptop, fail under CI: a test of other users must never silently not run."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI this is an error ({HOW_TO})", pytrace=False)
    pytest.skip(f"{message} ({HOW_TO})")


def require_user(name: str) -> pwd.struct_passwd:
    """The account `name`, when the tests can run things as it (as root, with `runuser`)."""
    if os.geteuid() != 0:
        unavailable(f"running as {name} needs root (the tests run as uid {os.geteuid()})")
    if shutil.which("runuser") is None and not os.path.exists("/usr/sbin/runuser"):
        unavailable("`runuser` (util-linux) is missing")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        unavailable(f"there is no local user {name}")
        raise


def as_user(
    user: str,
    argv: Iterable[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    group: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as `user` (with its supplementary groups; `group`: another primary group)
    in a clean environment: that user's HOME, a system PATH, LANG, the PIP_* settings of this
    session, plus `env`."""
    account = pwd.getpwnam(user)
    clean = {
        "HOME": account.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "PATH": PATH,
        "LANG": "C.UTF-8",
        **{k: v for k, v in os.environ.items() if k.startswith("PIP_")},
        **(env or {}),
    }
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    command = [
        runuser,
        "-u",
        user,
        *(["-g", group] if group else []),
        "--",
        "env",
        "-i",
        *(f"{k}={v}" for k, v in clean.items()),
    ]
    return subprocess.run(
        [*command, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": PATH, "LANG": "C.UTF-8"},
    )


def give(path: Path, user: str) -> None:
    """Make `path` and everything under it belong to `user` (and its primary group)."""
    account = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            os.lchown(name, account.pw_uid, account.pw_gid)


def user_venv(
    user: str, root: Path, packages: Iterable[str] = ("qwex-core", "qwex-agent", "qwex-docker")
) -> Path:
    """A venv of Debian's Python made by `user` under `root`, with the repo's `packages`
    (distribution folders) installed non-editable by that user; returns its bin dir.

    The sources are copied into `root` (given to `user`) first, since the checkout may not be
    reachable. Takes tens of seconds (pip builds the wheels): use it in a session fixture.
    `root`'s parents must let `user` through."""
    root.mkdir(parents=True, exist_ok=True)
    sources = root / "src"
    for package in packages:
        shutil.copytree(REPO / package, sources / package, ignore=_SKIP_COPY, dirs_exist_ok=True)
    venv = root / "venv"
    give(root, user)
    steps = [
        [SYSTEM_PYTHON, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "pip"),
            "install",
            "--no-input",
            "--quiet",
            *(str(sources / p) for p in packages),
        ],
    ]
    for argv in steps:
        done = as_user(user, argv, cwd=root, timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} as {user} failed:\n{done.stderr[-3000:]}")
    return venv / "bin"


def qwex_as(
    user: str,
    bin_dir: Path,
    project: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    group: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`qwex ARGS` run by `user` from the venv `bin_dir`, in `project`."""
    argv = [str(bin_dir / "qwex"), *args]
    return as_user(user, argv, cwd=project, env=env, timeout=timeout, group=group)


def world_writable(root: Path) -> list[str]:
    """Every file or folder under `root` (itself included) that any user may write."""
    found = []
    for folder, dirs, files in os.walk(root):
        for path in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
            mode = os.lstat(path).st_mode
            if mode & 0o002 and not os.path.islink(path):
                found.append(f"{path} ({mode & 0o7777:o})")
    return found


TAMPERING = {
    "append to the record": "echo x >> {d}/run.json",
    "overwrite the stdout log": "echo x > {d}/stdout.log",
    "truncate the stderr log": ": > {d}/stderr.log",
    "replace the record": "echo '{{}}' > /tmp/qwex-forged.$$ && mv -f /tmp/qwex-forged.$$ {d}/run.json",
    "create a file in the run folder": "echo x > {d}/forged",
    "delete the record": "rm -f {d}/run.json",
    "delete the stdout log": "rm -f {d}/stdout.log",
    "rename the run folder": "mv {d} {d}.moved",
}
"""Shell commands another user tries on a run folder `{d}`; each one must fail."""


def tamper(user: str, run_dir: Path) -> list[str]:
    """Try every `TAMPERING` on `run_dir` as `user`; return those that worked (none, we hope),
    with the run folder's files unchanged either way as the caller checks."""
    worked = []
    for what, script in TAMPERING.items():
        done = as_user(user, ["/bin/sh", "-c", script.format(d=run_dir)], cwd=Path("/"))
        if done.returncode == 0:
            worked.append(what)
    return worked
