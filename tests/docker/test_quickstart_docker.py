"""docs/quickstart.md's Docker block, as written, on the real daemon (with the offline
test image in place of `python:3.11`, which the test machine does not pull)."""

from __future__ import annotations

from pathlib import Path

from quickstart import blocks, run_block


def test_the_docker_quick_start_runs_as_written(
    project: Path, docker_ready: dict[str, str]
) -> None:
    [body] = blocks("docker")
    assert "python:3.11" in body
    result = run_block(body.replace("python:3.11", docker_ready["python"]), project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(3, " in result.stdout  # the image's Python printed its version
    assert "docker" in result.stdout.splitlines()[-1]  # `qwex list -b docker` shows the run
