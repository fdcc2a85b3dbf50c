"""The documentation site (mkdocs.yml, tools/docs_hooks.py) builds with no warning, and
a page that documents a CLI option, a configuration key or a hook the code no longer has
stops the build: the references are written from the code, hand-written pages link into
them, and `--strict` refuses a link to an anchor that is gone."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mkdocs.commands.build import build
from mkdocs.config import load_config
from mkdocs.exceptions import Abort

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))  # docs_reference, as the MkDocs hook imports it


def build_site(site: Path) -> None:
    config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(site), strict=True)
    config.plugins.on_startup(command="build", dirty=False)
    try:
        build(config)
    finally:
        config.plugins.on_shutdown()


@pytest.fixture(autouse=True)
def _quiet_mkdocs() -> Iterator[None]:
    before = os.environ.get("NO_MKDOCS_2_WARNING")
    os.environ["NO_MKDOCS_2_WARNING"] = "1"
    yield
    if before is None:
        os.environ.pop("NO_MKDOCS_2_WARNING", None)


def test_the_site_builds_with_every_reference_and_picture(tmp_path: Path) -> None:
    build_site(tmp_path)
    cli = (tmp_path / "reference" / "cli" / "index.html").read_text()
    assert 'id="qwex-run--gpu"' in cli and 'id="qwex-serve-token-add"' in cli
    config = (tmp_path / "reference" / "configuration" / "index.html").read_text()
    assert 'id="k8s.namespace"' in config and "QWEX_K8S_NAMESPACE" in config
    hooks = (tmp_path / "reference" / "hooks" / "index.html").read_text()
    assert 'id="qwex_prepare_job"' in hooks
    api = (tmp_path / "reference" / "api" / "index.html").read_text()
    assert 'id="get-api-v1-health"' in api
    for picture in ("run-path", "run-states"):
        assert (tmp_path / "diagrams" / f"{picture}.svg").read_text().lstrip().startswith("<")


def test_removing_a_cli_option_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/docker.md documents `--cpu`; a `qwex run` without it must not build."""
    from qwex_core.cli import run_command

    kept = [p for p in run_command.run.params if "--cpu" not in getattr(p, "opts", [])]
    assert len(kept) < len(run_command.run.params)
    monkeypatch.setattr(run_command.run, "params", kept)
    with pytest.raises(Abort):
        build_site(tmp_path)
    assert "#qwex-run--cpu" in caplog.text


def test_removing_a_config_section_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/kubernetes.md documents `[tool.qwex.k8s]`'s keys; without them, no site."""
    monkeypatch.setenv("QWEX_DISABLE_PLUGINS", "k8s")
    with pytest.raises(Abort):
        build_site(tmp_path)
    assert "#k8s.namespace" in caplog.text


def test_removing_a_hookspec_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/plugins.md's hook table links every hook to its reference entry."""
    from qwex_core.plugin import hookspecs

    monkeypatch.delattr(hookspecs, "qwex_collect_garbage")
    with pytest.raises(Abort):
        build_site(tmp_path)
    assert "#qwex_collect_garbage" in caplog.text


def test_a_status_missing_from_the_state_picture_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/diagrams/run-states.dot must draw every RunStatus (a new one included)."""
    from types import SimpleNamespace

    from qwex_core import models

    grown = [*models.RunStatus, SimpleNamespace(value="paused")]  # iterated like the enum
    monkeypatch.setattr(models, "RunStatus", grown)
    with pytest.raises(Abort):
        build_site(tmp_path)
    assert "does not draw the statuses ['paused']" in caplog.text


def test_removing_an_api_operation_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/server.md's table of operations links each to the API reference, which is
    written from the committed openapi.json: a spec without `cancel_job` stops the build."""
    import json

    import docs_reference

    spec = json.loads(docs_reference.OPENAPI.read_text())
    for methods in spec["paths"].values():
        for method in [m for m, op in methods.items() if op.get("operationId") == "cancel_job"]:
            del methods[method]
    changed = tmp_path / "openapi.json"
    changed.write_text(json.dumps(spec))
    monkeypatch.setattr(docs_reference, "OPENAPI", changed)
    with pytest.raises(Abort):
        build_site(tmp_path / "site")
    assert "#cancel_job" in caplog.text
