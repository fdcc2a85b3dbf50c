"""docs/quickstart.md's local block does what the page says, as written."""

from __future__ import annotations

from pathlib import Path

from quickstart import blocks, run_block


def test_the_local_quick_start_runs_as_written(project: Path) -> None:
    """Every line of the block succeeds; the first run prints its greeting and the second
    ends with exit code 3, as the prose after the block says."""
    [body] = blocks("local")
    result = run_block(body, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from qwex" in result.stdout
    assert "first ended with 3" in result.stdout
    assert "exit code 3" in result.stdout
    assert "working" in result.stdout


def test_the_concepts_profile_example_runs_as_written(project: Path) -> None:
    """docs/concepts.md: a profile overlays the keys below it (here `env`)."""
    [body] = blocks("profile", "concepts.md")
    result = run_block(body, project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["hello", "HELLO"]
