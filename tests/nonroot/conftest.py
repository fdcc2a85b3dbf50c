"""Fixtures for the tests run as the unprivileged `qwex-user` (see tests/users.py).

Everything these tests touch lives under one folder in /tmp that other users can pass
through (0755, as most project folders are): pytest's own temporary folders are root's
alone, and a test that `qwex-other` cannot change a run must fail for the run's own
modes, not because a parent folder is closed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from users import OTHER, USER, give, require_user, unavailable, user_venv


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
def user_agent_dir(user_root: Path) -> Path:
    """A copy, readable by qwex-user, of the agent bundle this session builds (or finds) as
    root: a directory of `<os>-<arch>/` bundles for `[docker] agent_dir`."""
    from qwex_docker.bundle.build import BuildError, build

    try:
        built = build()
    except BuildError as exc:
        unavailable(f"cannot build the qwex agent: {exc}")
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
