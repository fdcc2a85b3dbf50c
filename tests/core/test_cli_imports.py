"""What an everyday command imports (issue 21): the causes of its cost, not its time.

A command reading a final run needs no pydantic model (building the model classes and
their validators, with pydantic's scan of every installed distribution for its plugins,
is most of what such a command used to cost), no configuration and no backend library.
Checked through `sys.modules` of a `qwex` run in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_support import Qwex

PROBE = """
import json, sys
LOADER = "pydantic.plugin._loader"
from qwex_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
loaded = [n for n, m in sys.modules.items() if n != LOADER or getattr(m, "__file__", None)]
print(json.dumps({"code": code, "modules": sorted(loaded)}))
"""
"""Prints the modules imported, pydantic's plugin loader only if it is the real one (qwex's
stand-in, which imports nothing, answers when no pydantic plugin is installed)."""

UNNEEDED = (
    "qwex_core.models",
    "qwex_core.config",
    "pydantic.main",
    "pydantic.fields",
    "pydantic.plugin._loader",
    "importlib.metadata",
    "docker",
    "kubernetes",
    "httpx",
)
"""What reading a final run never needs: the models, the configuration, pydantic's model
machinery and plugin scan, a backend's client library."""
UNNEEDED_PACKAGES = tuple(f"{name}." for name in UNNEEDED)


def imported(project: Path, *args: str) -> tuple[int, list[str]]:
    """(exit code, modules imported) of `qwex ARGS` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=60,
    )
    last = json.loads(result.stdout.strip().splitlines()[-1])
    return last["code"], last["modules"]


@pytest.mark.parametrize(
    "args",
    [["status"], ["logs"], ["cancel"], ["wait"], ["logs", "--tail", "1"]],
)
def test_reading_a_final_run_builds_no_model(project: Path, qwex: Qwex, args: list[str]) -> None:
    run_id = qwex("run", "-d", "--", "echo", "hello", check=True).stdout.strip()
    assert qwex("wait", run_id).returncode == 0
    assert qwex("status", run_id, check=True).returncode == 0  # the end is told to plugins
    code, modules = imported(project, *args[:1], run_id, *args[1:])
    assert code in (0, None)
    assert [m for m in modules if m in UNNEEDED or m.startswith(UNNEEDED_PACKAGES)] == []


def test_listing_builds_no_model(project: Path, qwex: Qwex) -> None:
    for _ in range(3):
        qwex("run", "--", "true", check=True)
    code, modules = imported(project, "list")
    assert code in (0, None)
    assert [m for m in UNNEEDED if m in modules] == []


OTHER_BACKENDS = (
    "qwex_docker.settings",
    "qwex_docker.runner",
    "qwex_k8s.settings",
    "qwex_k8s.runner",
    "qwex_remote.client_settings",
    "qwex_remote.server",
    "docker",
    "kubernetes",
    "httpx",
)
"""What a local run never needs: other backends' settings models and clients (a section no
configuration layer sets is its model's defaults, made only when asked for)."""


def test_a_local_run_builds_no_other_backends_settings(project: Path) -> None:
    code, modules = imported(project, "run", "-q", "--", "true")
    assert code == 0
    needless = tuple(f"{name}." for name in OTHER_BACKENDS)
    assert [m for m in modules if m in OTHER_BACKENDS or m.startswith(needless)] == []


def test_a_local_run_scans_no_distribution_metadata_when_pydantic_has_no_plugin(
    project: Path,
) -> None:
    """pydantic's own plugin lookup imports importlib.metadata and walks every distribution
    (40 ms of a run's CPU); qwex's scan has already seen there is no pydantic plugin."""
    code, modules = imported(project, "run", "-q", "--", "true")
    assert code == 0
    assert "importlib.metadata" not in modules


@pytest.mark.parametrize("command", ["list", "status"])
def test_looking_at_a_live_run_scans_no_distribution_metadata(
    project: Path, qwex: Qwex, command: str
) -> None:
    """A live run's record is validated as a model before the configuration loads (which is
    where qwex's answer was given): pydantic's own lookup then walked every distribution."""
    run_id = qwex("run", "-d", "--", "sleep", "30", check=True).stdout.strip()
    try:
        code, modules = imported(project, command, *([run_id] if command == "status" else []))
        assert code in (0, None)
        assert "qwex_core.models" in modules  # a live run: the model is built
        assert "importlib.metadata" not in modules
    finally:
        qwex("cancel", run_id)


PYDANTIC_PLUGIN = """
from pathlib import Path

class Seen:
    def new_schema_validator(self, schema, schema_type, schema_type_path, schema_kind, config,
                             plugin_settings):
        with open(Path(__file__).with_name("validated.txt"), "a") as out:
            out.write(schema_type_path.name + "\\n")
        return None, None, None

plugin = Seen()
"""


def test_an_installed_pydantic_plugin_still_sees_qwex_validate(
    project: Path, tmp_path: Path, qwex: Qwex
) -> None:
    site = tmp_path / "site"
    info = site / "seen_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: seen-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nseen = seen_plugin:plugin\n")
    (site / "seen_plugin.py").write_text(PYDANTIC_PLUGIN)
    result = qwex("run", "-q", "--", "true", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "JobSpec" in (site / "validated.txt").read_text().split()


COMMAND_MODULES = {
    f"qwex_core.cli.{module}"
    for module, _, _ in __import__(
        "qwex_core.cli.app", fromlist=["CORE_COMMANDS"]
    ).CORE_COMMANDS.values()
}


def test_help_imports_no_command_module(project: Path) -> None:
    """`qwex --help` lists core's commands from `CORE_COMMANDS` without importing one, and
    imports none of the standard modules it used to pay for without using them: `pathlib`
    (5 ms of CPU of 56), `shutil` for click's terminal width (3 ms). (`json` is not
    checked: this probe imports it.)"""
    code, modules = imported(project, "--help")
    assert code in (0, None)
    assert sorted(COMMAND_MODULES & set(modules)) == []
    unused = {"pathlib", "shutil", "pydantic", "importlib.metadata"}
    assert sorted(unused & set(modules)) == []


def test_a_plugins_group_imports_its_commands_only_when_used(project: Path) -> None:
    """qwex-agent's plugin adds the `agent` group at every start; the module of its
    commands is imported for `qwex agent ...` only (`qwex_agent.plugin.AgentGroup`)."""
    for args in (["--help"], ["status", "--help"]):
        code, modules = imported(project, *args)
        assert code in (0, None)
        assert "qwex_agent.plugin" in modules and "qwex_agent.commands" not in modules
    code, modules = imported(project, "agent", "path", "--help")
    assert code in (0, None)
    assert "qwex_agent.commands" in modules


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["status", "--help"], "qwex_core.cli.read_commands"),
        (["wait", "--help"], "qwex_core.cli.wait_command"),
        (["config", "--help"], "qwex_core.cli.admin_commands"),
    ],
)
def test_a_command_imports_only_its_own_command_module(
    project: Path, args: list[str], module: str
) -> None:
    """(`qwex_core.cli.completion` holds, beside its command, the completers of run ids and
    backends that other commands' arguments use.)"""
    code, modules = imported(project, *args)
    assert code in (0, None)
    assert sorted(COMMAND_MODULES & set(modules) - {"qwex_core.cli.completion"}) == [module]


@pytest.mark.parametrize("limit", [20, 45, 74, 200])
def test_help_sentences_are_the_commands_own(limit: int) -> None:
    """The sentence `--help` shows of a command not imported is what click makes of the
    command's own help, at every width."""
    import click
    from qwex_core.cli.app import CORE_COMMANDS, make_cli
    from qwex_core.cli.context import State
    from qwex_core.plugin.manager import PluginHost

    host = PluginHost(autoload=False)
    group = make_cli(host)
    ctx = click.Context(group, info_name="qwex", obj=State(host=host))
    for name, (_, _, sentence) in CORE_COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None and command.name == name
        shown = click.Command(name, help=sentence).get_short_help_str(limit)
        assert shown == command.get_short_help_str(limit), name


@pytest.mark.parametrize("columns", ["30", "79", "100", "300", "", "x"])
def test_help_is_as_wide_as_clicks_own(monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    """The group's help, measured without `shutil`, is what click makes with it."""
    import click
    from qwex_core.cli.app import make_cli
    from qwex_core.cli.context import State
    from qwex_core.plugin.manager import PluginHost

    monkeypatch.setenv("COLUMNS", columns)
    host = PluginHost(autoload=False)
    group = make_cli(host)
    ours = group.context_class(group, info_name="qwex", obj=State(host=host)).get_help()
    clicks = click.Context(group, info_name="qwex", obj=State(host=host)).get_help()
    assert ours == clicks
