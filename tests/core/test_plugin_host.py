"""The plugin host in-process: each hook implementation called on its own, one group per host."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner
from qwex_core.cli.app import make_cli
from qwex_core.errors import PluginError
from qwex_core.plugin import hookimpl
from qwex_core.plugin.manager import PluginHost


@pytest.fixture(autouse=True)
def no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QWEX_PLUGINS", raising=False)


def plugin(name: str, *functions: Callable[..., Any]) -> types.ModuleType:
    """A plugin module named `name` implementing `functions` (named after their hooks)."""
    module = types.ModuleType(name)
    for function in functions:
        setattr(module, function.__name__, hookimpl(function))
    return module


def finished_returning(value: str) -> Callable[..., Any]:
    def qwex_run_finished(run: object) -> str:
        return value

    return qwex_run_finished


def test_call_runs_every_implementation_last_registered_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def qwex_run_finished(run: object) -> None:
        raise RuntimeError("boom\nsecond line")

    host = PluginHost(
        autoload=False,
        plugins=[
            ("a", plugin("a", finished_returning("from a"))),
            ("bad", plugin("bad", qwex_run_finished)),
            ("b", plugin("b", finished_returning("from b"))),
        ],
    )
    assert host.call("qwex_run_finished", run=object()) == ["from b", "from a"]
    message = "plugin 'bad' failed in qwex_run_finished: RuntimeError: boom second line"
    assert capsys.readouterr().err == f"qwex: warning: {message}\n"
    assert host.load_errors == [message]


def test_call_passes_only_the_arguments_an_implementation_asks_for() -> None:
    def qwex_prepare_job(spec: dict[str, str]) -> None:
        spec["seen"] = "yes"

    spec: dict[str, str] = {}
    host = PluginHost(autoload=False, plugins=[("p", plugin("p", qwex_prepare_job))])
    assert host.call("qwex_prepare_job", spec=spec, config=None) == []
    assert spec == {"seen": "yes"}


def test_a_raising_registration_hook_keeps_nothing_and_the_others_stay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def qwex_register_runners(register: Callable[..., None]) -> None:
        register("half", "x:Y")
        raise ValueError("no")

    def good(register: Callable[..., None]) -> None:
        register("fine", "x:Y")

    good.__name__ = "qwex_register_runners"
    host = PluginHost(
        autoload=False,
        plugins=[("bad", plugin("bad", qwex_register_runners)), ("good", plugin("good", good))],
    )
    assert list(host.runners) == ["fine"]
    assert "plugin 'bad' failed in qwex_register_runners: ValueError: no" in capsys.readouterr().err


def test_a_refused_registration_stops_qwex_even_if_the_plugin_catches_it() -> None:
    def qwex_register_runners(register: Callable[..., None]) -> None:
        with contextlib.suppress(Exception):
            register("Bad Name", "x:Y")

    host = PluginHost(autoload=False, plugins=[("sly", plugin("sly", qwex_register_runners))])
    with pytest.raises(PluginError, match="invalid runner name 'Bad Name'"):
        _ = host.runners


def test_make_cli_builds_a_new_group_for_each_host() -> None:
    def qwex_register_commands(cli: click.Group) -> None:
        @cli.command("extra")
        def extra() -> None:
            click.echo("extra here")

    plain = make_cli(PluginHost(autoload=False))
    extended = make_cli(
        PluginHost(autoload=False, plugins=[("x", plugin("x", qwex_register_commands))])
    )
    again = make_cli(PluginHost(autoload=False))
    assert plain is not extended and plain is not again

    def names(group: click.Group) -> set[str]:
        return set(group.list_commands(click.Context(group)))

    assert "extra" in names(extended)
    assert "extra" not in names(plain) and "extra" not in names(again)
    assert {"run", "list", "backends"} <= names(plain) & names(extended)
    assert CliRunner().invoke(extended, ["extra"]).output == "extra here\n"
    assert CliRunner().invoke(plain, ["extra"]).exit_code == 2


def test_a_misspelled_hook_is_reported_at_load(capsys: pytest.CaptureFixture[str]) -> None:
    """pluggy registers any marked function; one whose name is no hook is never called."""

    def qwex_run_finishd(run: object) -> None:
        raise AssertionError("never called")

    host = PluginHost(autoload=False, plugins=[("typo", plugin("typo", qwex_run_finishd))])
    message = (
        "plugin 'typo' implements qwex_run_finishd, which is not a qwex hook "
        "(did you mean qwex_run_finished?): it is never called"
    )
    assert capsys.readouterr().err == f"qwex: warning: {message}\n"
    assert host.load_errors == [message]
    assert host.call("qwex_run_finished", run=object()) == []
