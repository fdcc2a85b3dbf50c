"""The site's `run docker` examples (tests/docs_examples.py), run as written on the real
daemon, in page order in one fresh project per page, with the offline test images in
place of `python:3.11` and `busybox`."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_examples import DOCKER_IMAGES, ROOT, blocks, needs, pages, run_env, run_page

DOCKER_PAGES = [p for p in pages() if needs(blocks(p)) == "docker"]


def test_some_page_has_a_docker_example() -> None:
    assert [p.name for p in DOCKER_PAGES] == ["docker.md"]


@pytest.mark.parametrize("page", DOCKER_PAGES, ids=[str(p.relative_to(ROOT)) for p in DOCKER_PAGES])
def test_the_docker_examples_run_as_written(
    page: Path, project: Path, tmp_path: Path, docker_ready: dict[str, str]
) -> None:
    assert set(DOCKER_IMAGES.values()) == set(docker_ready.values())
    assert run_page(blocks(page), project, run_env(tmp_path), DOCKER_IMAGES) == []
