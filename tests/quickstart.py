"""The quick start's shell blocks (docs/quickstart.md), run as they are written.

A block is the ```sh fence right after a `<!-- quickstart: TAG -->` line; the test of each
backend runs its tag's blocks with bash -eu -o pipefail in the test's project."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parent.parent / "docs" / "quickstart.md"
BLOCK = re.compile(r"<!-- quickstart: (?P<tag>[\w-]+) -->\n```sh\n(?P<body>.*?)```", re.S)


def blocks(tag: str) -> list[str]:
    found = [m.group("body") for m in BLOCK.finditer(PAGE.read_text()) if m.group("tag") == tag]
    assert found, f"docs/quickstart.md has no block marked `quickstart: {tag}`"
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
