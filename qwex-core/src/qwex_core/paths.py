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


def store_announcement(project_dir: Path) -> str | None:
    """What to say when `.qwex/` is about to be created in `project_dir`, or None when it
    goes where a user expects it: a project folder (`qwex.toml`, `pyproject.toml`, `.git`)
    that is not the home directory. Said once: afterwards `.qwex/` exists."""
    home = Path(os.path.expanduser("~")).resolve()
    where = project_dir.resolve()
    if where == home:
        return (
            f"creating .qwex/ in your home directory {where}: runs started here are recorded "
            "there; a qwex.toml in a project folder (or --project DIR) keeps them with the project"
        )
    if any((where / marker).exists() for marker in PROJECT_MARKERS):
        return None
    return (
        f"creating .qwex/ in {where} (no qwex.toml, pyproject.toml, .git or .qwex here or "
        "above): runs started from below this folder are recorded there"
    )


def runs_dir(project_dir: Path) -> Path:
    """The folder that holds one sub-folder per run."""
    return project_dir / ".qwex" / "runs"
