"""Where a project's run store lives. Standard library only: the agent imports it."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_MARKERS = (".qwex", "qwex.toml", "pyproject.toml", ".git")


def find_project_dir(start: Path | None = None) -> Path:
    """The project directory: `$QWEX_PROJECT_DIR`, else the nearest ancestor of
    `start` (default: the working directory) holding `.qwex/`, `qwex.toml`,
    `pyproject.toml` or `.git`, else `start` itself."""
    override = os.environ.get("QWEX_PROJECT_DIR")
    if override:
        return Path(override).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if any((candidate / marker).exists() for marker in PROJECT_MARKERS):
            return candidate
    return here


def runs_dir(project_dir: Path) -> Path:
    """The folder that holds one sub-folder per run."""
    return project_dir / ".qwex" / "runs"
