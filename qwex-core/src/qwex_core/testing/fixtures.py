"""Fixtures the plugin `qwex_core.testing` provides."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def qwex_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project (it has a `qwex.toml`) as the working directory, isolated from the
    machine: no user configuration and no `QWEX_*` variables."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "qwex.toml").write_text("")
    monkeypatch.chdir(root)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in [v for v in os.environ if v.startswith("QWEX_")]:
        monkeypatch.delenv(var)
    yield root
