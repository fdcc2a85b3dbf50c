"""The hand-written pages describe everything the code has, and nothing it lacks: every CLI
command, option and argument, every configuration key (backends' sections included),
every hookspec, every API operation (tests/docs_inventory.py says what counts as
described). Each way of drifting is shown failing on a changed copy of the source of
truth: the click tree, a pydantic model, the hookspecs, openapi.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from docs_inventory import docs_reference, entries, stale, undocumented
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from qwex_core.cli.app import CORE_COMMANDS
from qwex_core.config import CoreSettings


@pytest.fixture
def cli() -> click.Group:
    from qwex_core.cli.app import make_cli
    from qwex_core.plugin.manager import PluginHost

    return make_cli(PluginHost())


def command(group: click.Group, *path: str) -> click.Command:
    ctx = click.Context(group)
    found: click.Command | None = group
    for name in path:
        assert isinstance(found, click.Group)
        found = found.get_command(ctx, name)
    assert found is not None
    return found


def without(cmd: click.Command, option: str) -> list[click.Parameter]:
    kept = [p for p in cmd.params if option not in getattr(p, "opts", [])]
    assert len(kept) == len(cmd.params) - 1
    return kept


def test_every_entry_of_the_code_is_described(cli: click.Group) -> None:
    have = entries(cli)
    assert len(have["cli"]) > 100 and len(have["configuration"]) > 70
    assert len(have["hooks"]) >= 6 and len(have["api"]) >= 9
    assert undocumented(cli) == {}


def test_no_page_describes_what_the_code_lacks(cli: click.Group) -> None:
    assert stale(cli) == {}


# --- the CLI -----------------------------------------------------------------------------


def test_removing_an_option_shown_in_a_command_line_fails(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`qwex logs --tail` is in README's and the pages' command lines, linked nowhere."""
    logs = command(cli, "logs")
    monkeypatch.setattr(logs, "params", without(logs, "--tail"))
    gone = stale(cli)["cli"]
    assert any("qwex logs" in g and "No such option '--tail'" in g for g in gone), gone


def test_removing_an_option_only_linked_fails(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`qwex cancel --timeout` is described by a link of docs/runs.md only."""
    cancel = command(cli, "cancel")
    monkeypatch.setattr(cancel, "params", without(cancel, "--timeout"))
    assert "qwex-cancel--timeout" in stale(cli)["cli"]


def test_adding_an_undocumented_option_or_command_fails(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = command(cli, "run")
    monkeypatch.setattr(run, "params", [*run.params, click.Option(["--shiny"], is_flag=True)])
    monkeypatch.setitem(cli.commands, "polish", click.Command("polish", help="New."))
    assert undocumented(cli)["cli"] == ["qwex-polish", "qwex-run--shiny"]


@pytest.mark.slow
def test_removing_any_option_of_the_cli_fails(cli: click.Group) -> None:
    """Every option and argument of every command, one at a time (0.5 s each: 60 to 80 s)."""
    ctx = click.Context(cli)

    def walk(
        cmd: click.Command, path: list[str]
    ) -> Iterator[tuple[click.Command, click.Parameter, str]]:
        for param in cmd.params:
            if not getattr(param, "hidden", False):
                yield cmd, param, docs_reference.param_anchor(param, "-".join(path))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    yield from walk(sub, [*path, name])

    found = list(walk(cli, ["qwex"]))
    assert len(found) > 90
    missed = []
    for cmd, param, anchor in found:
        params = cmd.params
        cmd.params = [p for p in params if p is not param]
        try:
            if not stale(cli).get("cli"):
                missed.append(anchor)
        finally:
            cmd.params = params
    assert missed == []


# --- configuration -----------------------------------------------------------------------


def test_removing_a_core_key_fails(monkeypatch: pytest.MonkeyPatch, cli: click.Group) -> None:
    """README's configuration examples set `grace_period`; docs/concepts.md links to it."""
    monkeypatch.delitem(CoreSettings.__pydantic_fields__, "grace_period")
    gone = stale(cli)["configuration"]
    assert "grace_period" in gone
    assert any(g.startswith("grace_period (README.md:") for g in gone), gone


def test_removing_a_backend_section_s_key_fails(
    monkeypatch: pytest.MonkeyPatch, cli: click.Group
) -> None:
    """docs/docker.md's `[tool.qwex.docker]` example sets `keep_containers`."""
    from qwex_docker.settings import DockerSettings

    monkeypatch.delitem(DockerSettings.__pydantic_fields__, "keep_containers")
    gone = stale(cli)["configuration"]
    assert any(g.startswith("docker.keep_containers (docs/docker.md:") for g in gone), gone


def test_adding_an_undocumented_key_or_section_fails(
    monkeypatch: pytest.MonkeyPatch, cli: click.Group, tmp_path: Path
) -> None:
    """A new core key, and a plugin registering a section of its own."""
    monkeypatch.setitem(
        CoreSettings.__pydantic_fields__, "shiny", FieldInfo(annotation=int, default=1)
    )
    (tmp_path / "qwex_shiny.py").write_text(
        "from pydantic import BaseModel\n"
        "from qwex_core.plugin import hookimpl\n\n\n"
        "class Shiny(BaseModel):\n    level: int = 1\n\n\n"
        "@hookimpl\ndef qwex_config_sections(register):\n    register('shiny', Shiny)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("QWEX_PLUGINS", "qwex_shiny")
    assert undocumented(cli)["configuration"] == ["shiny", "shiny.level"]


# --- hooks and the API -------------------------------------------------------------------


def test_removing_or_adding_a_hookspec_fails(
    monkeypatch: pytest.MonkeyPatch, cli: click.Group
) -> None:
    from qwex_core.plugin import hookspec, hookspecs

    monkeypatch.delattr(hookspecs, "qwex_run_finished")

    @hookspec
    def qwex_run_polished(run: object) -> None:
        """New."""

    monkeypatch.setattr(hookspecs, "qwex_run_polished", qwex_run_polished, raising=False)
    assert stale(cli)["hooks"] == ["qwex_run_finished"]
    assert undocumented(cli)["hooks"] == ["qwex_run_polished"]


@pytest.fixture
def spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, object]]:
    """A copy of openapi.json that the references are written from; change it in place."""
    data = json.loads(docs_reference.OPENAPI.read_text())
    copy = tmp_path / "openapi.json"
    copy.write_text(json.dumps(data))
    monkeypatch.setattr(docs_reference, "OPENAPI", copy)
    yield data


def write(data: dict[str, object]) -> None:
    docs_reference.OPENAPI.write_text(json.dumps(data))


def test_removing_an_api_operation_fails(spec: dict[str, object], cli: click.Group) -> None:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    paths["/api/v1/jobs/{job_id}/cancel"].pop("post")
    write(spec)
    assert stale(cli)["api"] == ["cancel_job"]


def test_adding_an_undocumented_api_operation_fails(
    spec: dict[str, object], cli: click.Group
) -> None:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    paths["/api/v1/jobs/{job_id}/polish"] = {
        "post": {"operationId": "polish_job", "responses": {"200": {}}}
    }
    write(spec)
    assert undocumented(cli)["api"] == ["polish_job"]


def fields(model: type[BaseModel], path: list[str]) -> Iterator[tuple[type[BaseModel], str, str]]:
    """Each key of `model` (nested tables' too) as (model, field, dotted key)."""
    for name, field in model.model_fields.items():
        yield model, name, ".".join([*path, name])
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from fields(inner, [*path, name])


@pytest.mark.slow
def test_removing_any_configuration_key_fails(cli: click.Group) -> None:
    """Every key of core and of every installed backend's section, one at a time (45 to
    70 s)."""
    from qwex_core.plugin.manager import PluginHost

    sections = PluginHost().config_sections
    found = list(fields(CoreSettings, []))
    for section in sections:
        found += fields(sections[section], [section])
    assert len(found) > 70
    missed = []
    for model, name, key in found:
        field = model.__pydantic_fields__.pop(name)
        try:
            if not stale(cli).get("configuration"):
                missed.append(key)
        finally:
            model.__pydantic_fields__[name] = field
    assert missed == []


@pytest.mark.slow
def test_removing_any_hookspec_or_api_operation_fails(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch, spec: dict[str, object]
) -> None:
    from qwex_core.plugin import hookspecs

    for name in sorted(entries(cli)["hooks"]):
        with monkeypatch.context() as changed:
            changed.delattr(hookspecs, name)
            assert stale(cli).get("hooks") == [name]
    paths = spec["paths"]
    assert isinstance(paths, dict)
    operations = [(route, method) for route, ops in paths.items() for method in ops]
    assert len(operations) >= 9
    for route, method in operations:
        operation = paths[route].pop(method)
        write(spec)
        assert stale(cli).get("api") == [operation["operationId"]]
        paths[route][method] = operation


@pytest.mark.slow
def test_removing_any_command_fails(cli: click.Group) -> None:
    """Every command and subcommand (backends' included), one at a time."""
    ctx = click.Context(cli)

    def walk(group: click.Group, path: list[str]) -> Iterator[tuple[click.Group, str, str]]:
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield group, name, "-".join([*path, name])
            if isinstance(sub, click.Group):
                yield from walk(sub, [*path, name])

    found = list(walk(cli, ["qwex"]))
    assert len(found) >= 20
    missed = []
    for group, name, anchor in found:
        # qwex-remote's `serve` is a lazy group: its commands are those of the real one.
        real = getattr(group, "real", None)
        holder = real() if real is not None else group
        removed = holder.commands.pop(name)
        # A core command is also listed lazily (by name, before import): deleting it from the
        # code deletes that entry too.
        lazy = CORE_COMMANDS.pop(name) if holder is cli and name in CORE_COMMANDS else None
        try:
            if not stale(cli).get("cli"):
                missed.append(anchor)
        finally:
            holder.commands[name] = removed
            if lazy is not None:
                CORE_COMMANDS[name] = lazy
    assert missed == []
