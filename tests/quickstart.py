"""The quick start's shell blocks (docs/quickstart.md), run as they are written.

A block is the ```sh fence right after a `<!-- quickstart: TAG -->` line; the test of each
backend runs its tag's blocks with bash -eu -o pipefail in the test's project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(
    r"<!-- (?:quickstart|example): (?P<tag>[\w-]+) -->\n```sh\n(?P<body>.*?)```", re.S
)


def blocks(tag: str, page: str = "quickstart.md") -> list[str]:
    """The blocks of docs/`page` marked `<!-- quickstart: TAG -->` (or `example: TAG`)."""
    text = (DOCS / page).read_text()
    found = [m.group("body") for m in BLOCK.finditer(text) if m.group("tag") == tag]
    assert found, f"docs/{page} has no block marked {tag!r}"
    return found


def run_block(body: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`body` in bash with this interpreter's scripts (`qwex`) first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-eu", "-o", "pipefail", "-c", body],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
