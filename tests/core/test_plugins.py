"""Plugin discovery through real entry points (fake distributions on PYTHONPATH)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def install_fake(
    site: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]
) -> None:
    """Make a distribution `dist` 1.0 with `modules` and `[qwex]` entry points, importable from `site`."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[qwex]\n{lines}\n")
    for name, source in modules.items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


GOOD = """
    from qwex_core.plugin import hookimpl
    import click

    @hookimpl
    def qwex_register_runners(register):
        register("nice", "good_runner:NiceRunner", description="local, at low priority")

    @hookimpl
    def qwex_register_commands(cli):
        @cli.command("hello")
        def hello():
            '''Say hello from a plugin.'''
            click.echo("hello from good")

    @hookimpl
    def qwex_prepare_job(spec, config):
        spec.env["ADDED_BY_PLUGIN"] = "yes"

    @hookimpl
    def qwex_run_finished(run):
        with open("finished.txt", "a") as fh:
            fh.write(run.id + " " + run.status.value + "\\n")

    @hookimpl
    def qwex_config_sections(register):
        from pydantic import BaseModel

        class GoodSettings(BaseModel):
            greeting: str = "hi"

        register("good", GoodSettings)
"""
GOOD_RUNNER = """
    import heavy_fake_lib  # stands for docker/kubernetes: must load only when used
    from qwex_core.runners.local import LocalRunner

    class NiceRunner(LocalRunner):
        pass
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "heavy_fake_lib.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def test_third_party_runner_command_and_hooks(project: Path, site: Path, qwex: Qwex) -> None:
    install_fake(site, "qwex-good", {"good": GOOD, "good_runner": GOOD_RUNNER}, {"good": "good"})
    backends = json.loads(qwex("backends", "--json", check=True).stdout)["backends"]
    nice = next(b for b in backends if b["name"] == "nice")
    assert (nice["distribution"], nice["version"], nice["description"]) == (
        "qwex-good",
        "1.0",
        "local, at low priority",
    )
    assert "hello" in qwex("--help").stdout
    assert qwex("hello").stdout == "hello from good\n"
    result = qwex("run", "-b", "nice", "--", "sh", "-c", "echo $ADDED_BY_PLUGIN")
    assert result.returncode == 0 and result.stdout == "yes\n"
    run = json.loads(qwex("list", "--json").stdout)[0]
    assert run["backend"] == "nice"
    qwex("status", run["id"], check=True)  # observing again must not notify again
    assert (project / "finished.txt").read_text() == f"{run['id']} succeeded\n"


def test_broken_plugin_is_named_and_the_rest_work(project: Path, site: Path, qwex: Qwex) -> None:
    install_fake(
        site,
        "qwex-broken",
        {"broken": "raise RuntimeError('boom at import')"},
        {"broken": "broken"},
    )
    result = qwex("backends")
    assert result.returncode == 0 and "local" in result.stdout
    warning = [line for line in result.stderr.splitlines() if "broken" in line]
    assert warning == [
        "qwex: warning: plugin 'broken' (qwex-broken 1.0) failed to load: RuntimeError: boom at import"
    ]
    assert qwex("run", "--", "true").returncode == 0
    quiet = qwex("backends", env={"QWEX_DISABLE_PLUGINS": "broken"})
    assert "broken" not in quiet.stderr and "local" in quiet.stdout


BAD_HOOKS = {
    "qwex_register_runners": """
        @hookimpl
        def qwex_register_runners(register):
            register("partial", "good_runner:NiceRunner")
            raise RuntimeError("boom")
    """,
    "qwex_config_sections": """
        @hookimpl
        def qwex_config_sections(register):
            from pydantic import BaseModel
            register("partial", BaseModel)
            raise RuntimeError("boom")
    """,
    "qwex_prepare_job": """
        @hookimpl
        def qwex_prepare_job(spec, config):
            raise RuntimeError("boom")
    """,
    "qwex_run_finished": """
        @hookimpl
        def qwex_run_finished(run):
            raise RuntimeError("boom")
    """,
    "qwex_register_commands": """
        @hookimpl
        def qwex_register_commands(cli):
            raise RuntimeError("boom")
    """,
}


def warnings(stderr: str) -> list[str]:
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return [line for line in stderr.splitlines() if "warning" in line]


@pytest.mark.parametrize("bad", ["aaa", "zzz"])  # loaded before / after qwex-good
@pytest.mark.parametrize("hook", sorted(BAD_HOOKS))
def test_a_raising_hook_breaks_only_its_plugin(
    project: Path, site: Path, qwex: Qwex, hook: str, bad: str
) -> None:
    install_fake(site, "qwex-good", {"good": GOOD, "good_runner": GOOD_RUNNER}, {"good": "good"})
    source = "from qwex_core.plugin import hookimpl\n" + textwrap.dedent(BAD_HOOKS[hook])
    install_fake(site, f"qwex-{bad}", {f"bad_{bad}": source}, {bad: f"bad_{bad}"})
    message = f"plugin {bad!r} (qwex-{bad} 1.0) failed in {hook}: RuntimeError: boom"

    result = qwex("run", "-b", "nice", "--", "sh", "-c", "echo $ADDED_BY_PLUGIN")
    assert (result.returncode, result.stdout) == (0, "yes\n"), result.stderr
    assert warnings(result.stderr) == [f"qwex: warning: {message}"]
    run_id = json.loads(qwex("list", "--json").stdout)[0]["id"]
    assert (project / "finished.txt").read_text() == f"{run_id} succeeded\n"

    help_ = qwex("--help")
    assert help_.returncode == 0 and "hello" in help_.stdout
    assert warnings(help_.stderr) == ([f"qwex: warning: {message}"] if "commands" in hook else [])
    hello = qwex("hello")
    assert hello.stdout == "hello from good\n" and hello.returncode == 0

    listed = qwex("backends", "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert {b["name"] for b in data["backends"]} >= {"local", "nice"}
    assert "partial" not in {b["name"] for b in data["backends"]}  # dropped with its failure
    if hook in ("qwex_register_runners", "qwex_register_commands"):
        assert data["load_errors"] == [message]

    config = qwex("config", "--json")
    assert config.returncode == 0, config.stderr
    keys = {v["key"] for v in json.loads(config.stdout)["values"]}
    assert "good.greeting" in keys and not any(k.startswith("partial") for k in keys)


def test_duplicate_runner_name_is_a_clear_error(project: Path, site: Path, qwex: Qwex) -> None:
    dup = """
        from qwex_core.plugin import hookimpl
        @hookimpl
        def qwex_register_runners(register):
            register("local", "qwex_core.runners.local:LocalRunner")
    """
    install_fake(site, "qwex-dup", {"dup": dup}, {"dup": "dup"})
    result = qwex("run", "--", "true")
    assert result.returncode == 1
    assert (
        "runner name 'local' is registered twice: by qwex-core 0.1.0 and by qwex-dup 1.0"
        in result.stderr
    )
    assert "QWEX_DISABLE_PLUGINS=dup" in result.stderr and "Traceback" not in result.stderr


def test_malformed_runner_name_is_a_clear_error(project: Path, site: Path, qwex: Qwex) -> None:
    bad = """
        from qwex_core.plugin import hookimpl
        @hookimpl
        def qwex_register_runners(register):
            register("My Runner", "x:Y")
    """
    install_fake(site, "qwex-bad", {"bad": bad}, {"bad": "bad"})
    result = qwex("backends")
    assert (
        result.returncode == 1
        and "qwex-bad 1.0 registers an invalid runner name 'My Runner'" in result.stderr
    )


def test_disable_all_plugins(project: Path, qwex: Qwex) -> None:
    data = json.loads(qwex("backends", "--json", env={"QWEX_DISABLE_PLUGINS": "1"}).stdout)
    assert data["backends"] == []
    result = qwex("run", "--", "true", env={"QWEX_DISABLE_PLUGINS": "1"})
    assert result.returncode == 1 and "unknown backend 'local' (installed: none)" in result.stderr


HEAVY = ["docker", "kubernetes", "httpx", "fastapi", "heavy_fake_lib", "qwex_docker.runner"]
PROBE = """
import json, sys
from qwex_core.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps(sorted(m for m in sys.modules if m in {heavy!r} or m.split('.')[0] == 'pydantic')))
"""


@pytest.mark.parametrize("args", [["--help"], ["run", "--", "true"], ["list"]])
def test_start_up_imports_no_backend(project: Path, site: Path, args: list[str]) -> None:
    install_fake(site, "qwex-good", {"good": GOOD, "good_runner": GOOD_RUNNER}, {"good": "good"})
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [m for m in imported if m in HEAVY], imported
    if args == ["--help"]:
        assert imported == [], "qwex --help must not even import pydantic"


def test_fast_discovery_agrees_with_importlib_metadata() -> None:
    """Our entry-point scan finds what importlib.metadata finds, for any group."""
    from importlib.metadata import entry_points as reference

    from qwex_core.plugin.discovery import entry_points

    for group in ("console_scripts", "qwex", "pytest11"):
        ours = sorted(
            (ep.name, ep.value, ep.dist_name.lower().replace("_", "-"))
            for ep in entry_points(group)
        )
        theirs = sorted(
            (ep.name, ep.value, ep.dist.name.lower().replace("_", "-"))
            for ep in reference(group=group)
            if ep.dist is not None
        )
        assert ours == theirs, group


def test_an_unknown_key_in_a_plugin_section_is_refused(
    project: Path, site: Path, qwex: Qwex
) -> None:
    """The plugin's model says nothing about extra keys: a typo is an error naming the keys
    it has, not a setting silently ignored (`[good]` in qwex.toml is `[tool.qwex.good]`)."""
    install_fake(site, "qwex-good", {"good": GOOD, "good_runner": GOOD_RUNNER}, {"good": "good"})
    (project / "qwex.toml").write_text('[good]\ngreting = "hello"\n')
    result = qwex("run", "--", "true")
    assert result.returncode == 1, result.stderr
    assert "key 'good.greting': unknown key; expected one of: greeting" in result.stderr
    assert "Traceback" not in result.stderr
    (project / "qwex.toml").write_text('[good]\ngreeting = "hello"\n')
    assert qwex("run", "--", "true").returncode == 0


def test_a_plugin_section_that_allows_extra_keys_keeps_them(
    project: Path, site: Path, qwex: Qwex
) -> None:
    lenient = GOOD.replace(
        "class GoodSettings(BaseModel):", "class GoodSettings(BaseModel, extra='allow'):"
    )
    install_fake(site, "qwex-good", {"good": lenient, "good_runner": GOOD_RUNNER}, {"good": "good"})
    (project / "qwex.toml").write_text('[good]\nanything = "goes"\n')
    assert qwex("run", "--", "true").returncode == 0
