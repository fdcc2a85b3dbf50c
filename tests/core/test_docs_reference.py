"""The generated references in the docs match the code they are generated from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_run_and_jobspec_field_tables_match_the_models() -> None:
    """Adding, renaming or retyping a field of Run or JobSpec without regenerating the
    plugin author's tables (python tools/gen_reference.py) fails here."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nothing_refers_to_a_design_file_outside_the_repository() -> None:
    """The docs explain the architecture in their own words (docs/architecture.md)."""
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.sh", "*.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    mark = "DESIGN " + "\N{SECTION SIGN}"  # spelled so that this file does not cite it
    citing = [f for f in tracked if mark in (ROOT / f).read_text(errors="replace")]
    assert citing == [], citing


def test_no_two_test_modules_share_a_name() -> None:
    """pytest imports test modules by their basename (the folders have no __init__.py):
    two of the same name fail collection of the whole suite."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
