"""Fixtures for the tests run as the unprivileged `qwex-user` (see tests/users.py).

Everything these tests touch lives under one folder in /tmp that other users can pass
through (0755, as most project folders are): pytest's own temporary folders are root's
alone, and a test that `qwex-other` cannot change a run must fail for the run's own
modes, not because a parent folder is closed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from users import (
    BUSYBOX,
    IMAGE_UID,
    IMAGE_WITH_USER,
    OTHER,
    USER,
    give,
    require_user,
    unavailable,
    user_venv,
)


@pytest.fixture(scope="session")
def user_root() -> Iterator[Path]:
    """A folder (0755, root's) for the session's user venv, agent copy and projects."""
    require_user(USER)
    require_user(OTHER)
    root = Path(tempfile.mkdtemp(prefix="qwex-nonroot-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def user_bin(user_root: Path) -> Path:
    """The bin dir of a venv of Debian's Python, made by qwex-user, with qwex-core and
    qwex-docker installed non-editable (tens of seconds, once per session)."""
    return user_venv(USER, user_root / "user")


@pytest.fixture(scope="session")
def docker_images() -> Iterator[dict[str, str]]:
    """The busybox test image, and one made from it whose own USER is 4321:4321 (removed after
    the session); skips on a laptop without them, fails under CI."""
    from docker.errors import APIError, ImageNotFound
    from qwex_docker.client import DaemonUnavailable, connect

    try:
        api = connect(None, 30)
        api.ping()
        api.inspect_image(BUSYBOX)
    except (DaemonUnavailable, ImageNotFound) as exc:
        unavailable(f"no Docker daemon or no {BUSYBOX} image ({exc}): `nox -s images`")
    tag = f"{IMAGE_WITH_USER}:{os.getpid()}"
    dockerfile = f"FROM {BUSYBOX}\nUSER {IMAGE_UID}:{IMAGE_UID}\n".encode()
    for _ in api.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, pull=False):
        pass
    try:
        yield {"busybox": BUSYBOX, "with-user": tag}
    finally:
        with contextlib.suppress(APIError):
            api.remove_image(tag, force=True)


@pytest.fixture(scope="session")
def user_agent_dir(user_root: Path, docker_images: dict[str, str]) -> Path:
    """A copy, readable by qwex-user, of the agent bundle this session builds (or finds) as
    root: a directory of `<os>-<arch>/` bundles for `[docker] agent_dir`."""
    from qwex_agent.build import BuildError, build

    try:
        built = build()
    except BuildError as exc:
        unavailable(f"cannot build the qwex agent ({exc}): `nox -s agent`")
    copy = user_root / "agents"
    shutil.copytree(built, copy / built.name, symlinks=True)
    give(copy, USER)
    return copy


@pytest.fixture
def user_project(user_root: Path, user_bin: Path) -> Path:
    """A fresh project of qwex-user (its folder 0755, with an empty qwex.toml)."""
    project = Path(tempfile.mkdtemp(prefix="project-", dir=user_root))
    project.chmod(0o755)
    (project / "qwex.toml").write_text("")
    give(project, USER)
    return project
