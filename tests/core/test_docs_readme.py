"""The README lists the site's pages: every page of mkdocs.yml's nav, linked (`docs/x.md`)
when it is a file of the repository, named (`reference/cli.md`) when the site writes it
from the code while building. The site's home page links every page too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def nav_pages(nav: list[Any]) -> list[str]:
    """The files of a MkDocs nav, in order, sections flattened."""
    found: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        found += nav_pages(value) if isinstance(value, list) else [str(value)]
    return found


def missing_from_readme(pages: list[str], readme: str) -> list[str]:
    """The nav pages the README neither links nor (generated ones) names; not the site's
    home (index.md), which the README is on the repository host."""
    return [
        page
        for page in pages
        if page != "index.md"
        and f"(docs/{page})" not in readme
        and ((ROOT / "docs" / page).exists() or f"`{page}`" not in readme)
    ]


def mkdocs_nav() -> list[str]:
    # mkdocs.yml is plain YAML (no !!python tags): safe_load reads it.
    return nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])


def test_the_readme_lists_every_page_of_the_site() -> None:
    pages = mkdocs_nav()
    assert "quickstart.md" in pages and "reference/cli.md" in pages and len(pages) >= 18
    assert missing_from_readme(pages, (ROOT / "README.md").read_text()) == []


def test_a_page_added_to_the_site_but_not_the_readme_fails() -> None:
    readme = (ROOT / "README.md").read_text()
    assert missing_from_readme([*mkdocs_nav(), "gpu-cloud.md", "reference/metrics.md"], readme) == [
        "gpu-cloud.md",
        "reference/metrics.md",
    ]


def test_every_page_of_the_docs_folder_is_in_the_nav() -> None:
    """A page left out of the nav is only a warning for MkDocs' own (`omitted_files`)."""
    files = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert files - set(mkdocs_nav()) == set()


def test_the_site_s_home_links_every_page() -> None:
    home = (ROOT / "docs" / "index.md").read_text()
    assert [p for p in mkdocs_nav() if p != "index.md" and f"]({p})" not in home] == []
