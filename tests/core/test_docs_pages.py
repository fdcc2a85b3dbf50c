"""The pages issue 27 asks for exist and hold what they are for: a quick start per backend
whose blocks a test runs, the concepts, one page per installed backend, the plugin
author's guide with the Run and JobSpec fields, a section's `qwex.toml` layout and the
`qwex_project` fixture's value (checked against the fixture itself), the architecture's
two pictures, operating the server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from docs_examples import blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BACKEND_PAGES = {"k8s": "kubernetes.md", "remote": "server.md"}
"""A backend's page is docs/NAME.md unless named here (a new backend `slurm`: slurm.md)."""
MIN_WORDS = 150


def section(page: str, heading: str) -> str:
    """The text of `page` under the heading that starts with `heading`, to the next heading
    of the same or a higher level."""
    text = (DOCS / page).read_text()
    found = re.search(rf"^(#+) {re.escape(heading)}.*?$", text, re.M)
    assert found, f"docs/{page} has no heading {heading!r}"
    rest = text[found.end() :]
    end = re.search(rf"^#{{1,{len(found[1])}}} ", rest, re.M)
    return rest[: end.start() if end else len(rest)]


def words(text: str) -> int:
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return len(re.findall(r"[A-Za-z]{2,}", prose))


def nav() -> dict[str, object]:
    items: dict[str, object] = {}
    for item in yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]:
        items.update(item)
    return items


@pytest.mark.parametrize(
    ("heading", "tag"),
    [
        ("Locally", "local"),
        ("In Docker", "docker"),
        ("On Kubernetes", "k8s"),
        ("Through a team server", "serve"),
    ],
)
def test_a_quick_start_per_backend_that_a_test_runs(heading: str, tag: str) -> None:
    """Each section holds its backend's block, marked with the tag its test runs
    (tests/core/test_docs_examples.py checks that a test calls blocks(TAG))."""
    text = section("quickstart.md", heading)
    assert f"<!-- quickstart: {tag} -->" in text
    tagged = [b for b in blocks(DOCS / "quickstart.md") if b.marker == tag]
    assert len(tagged) == 1 and tagged[0].body in text


@pytest.mark.parametrize(
    ("term", "link"),
    [
        ("A run", "runs.md#statuses"),
        ("The store", "runs.md#the-run-folder"),
        ("The agent", "agent.md"),
        ("A profile", "reference/configuration.md#profiles"),
    ],
)
def test_the_concepts_page_explains_each_concept(term: str, link: str) -> None:
    """Statuses and their reasons come with a run's paragraph (and the state picture)."""
    text = (DOCS / "concepts.md").read_text()
    paragraph = next(p for p in text.split("\n\n") if p.startswith(f"**{term}**"))
    assert f"({link})" in paragraph and words(paragraph) >= 25
    assert "diagrams/run-states.svg" in text and "reason" in text


def test_every_installed_backend_has_a_page_of_its_own() -> None:
    from qwex_core.plugin.manager import PluginHost

    names = set(PluginHost().runners)
    assert {"local", "docker", "k8s", "remote"} <= names
    listed = nav()["Backends"]
    assert isinstance(listed, list)
    backend_pages = {str(next(iter(item.values()))) for item in listed}
    for name in names:
        page = BACKEND_PAGES.get(name, f"{name}.md")
        assert page in backend_pages, f"backend {name!r}: no {page} under Backends in the nav"
        assert words((DOCS / page).read_text()) >= MIN_WORDS


def test_the_plugin_guide_has_the_fields_the_layout_and_the_fixture() -> None:
    text = (DOCS / "plugins.md").read_text()
    for table in ("run-fields", "jobspec-fields"):  # tests/core/test_docs_reference.py
        assert f"<!-- generated: {table} -->" in section("plugins.md", "The run and the job")
    layout = [b.body for b in blocks(DOCS / "plugins.md") if b.language == "toml"]
    assert any("# qwex.toml" in b and "[tool.qwex.mine]" in b and "[profiles." in b for b in layout)
    assert "QWEX_<SECTION>_<KEY>" in text
    assert 'Its value is the project\'s folder, a `pathlib.Path`:\n`tmp_path / "project"`' in text


def test_the_qwex_project_fixture_is_what_the_guide_says(
    qwex_project: Path, tmp_path: Path
) -> None:
    assert isinstance(qwex_project, Path) and qwex_project == tmp_path / "project"
    assert (qwex_project / "qwex.toml").read_text() == ""
    assert Path.cwd() == qwex_project
    assert os.environ["XDG_CONFIG_HOME"].startswith(str(tmp_path))
    assert not [v for v in os.environ if v.startswith("QWEX_")]


def test_the_architecture_page_draws_the_run_s_path_and_states() -> None:
    text = (DOCS / "architecture.md").read_text()
    assert "](diagrams/run-path.svg)" in text and "](diagrams/run-states.svg)" in text
    path = (DOCS / "diagrams" / "run-path.dot").read_text()
    for stop in ("CLI", "plugin", "agent", "docker", "k8s", "remote"):
        assert stop.lower() in path.lower(), stop


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("deploy.md", "Install"),
        ("deploy.md", "Upgrade"),
        ("deploy.md", "Backup"),
        ("server.md", "Metrics"),
    ],
)
def test_operating_the_server_covers_deploy_upgrade_backup_metrics(page: str, heading: str) -> None:
    assert words(section(page, heading)) >= 40
    assert "(server.md#metrics)" in (DOCS / "deploy.md").read_text()
    operating = nav()["Operating the server"]
    assert isinstance(operating, list)
    assert {"deploy.md", "server.md"} <= {str(next(iter(i.values()))) for i in operating}
