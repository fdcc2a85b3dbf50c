"""Promises of README.md and docs/ about the CLI that no other test checked: a key set in
several configuration layers (the highest wins, one layer at a time), `QWEX_PROFILE`,
`--project` and `QWEX_PROJECT_DIR`, a second Ctrl-C, `QWEX_PLUGINS`. Each through the
real `qwex` console script, as a user types it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cli_support import LIVE, QWEX, Qwex, wait_status


def config_value(qwex: Qwex, key: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """`qwex config --json`'s (value, source) of `key`."""
    out = json.loads(qwex("config", "--json", *args, env=env, check=True).stdout)
    [item] = [v for v in out["values"] if v["key"] == key]
    return item["value"], item["source"]


def seen_by_the_command(qwex: Qwex, *args: str, env: dict[str, str] | None = None) -> str:
    """What `echo $WHO` prints in a run started with `args`."""
    result = qwex("run", *args, "--", "sh", "-c", "echo $WHO", env=env, check=True)
    return result.stdout.strip()


# -- configuration layers: one key set in all of them ------------------------------------


def test_each_layer_overrides_the_one_below(project: Path, tmp_path: Path, qwex: Qwex) -> None:
    """README "Configuration": user file < pyproject.toml < qwex.toml < profile < QWEX_* <
    flags. The same key in every layer; peeling the layers off from the top shows each
    one's value in turn, so a layer that is ignored (or read in the wrong order) fails."""
    user = tmp_path / "xdg" / "qwex" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text('grace_period = 1\n[env]\nWHO = "user"\n')
    (project / "pyproject.toml").write_text(
        '[tool.qwex]\ngrace_period = 2\n[tool.qwex.env]\nWHO = "pyproject"\n'
    )
    qwex_toml = 'grace_period = 3\n[env]\nWHO = "qwex.toml"\n'
    profile = '[profiles.p]\ngrace_period = 4\n[profiles.p.env]\nWHO = "profile"\n'
    (project / "qwex.toml").write_text(qwex_toml + profile)

    env = {"QWEX_GRACE_PERIOD": "5"}
    assert config_value(qwex, "grace_period", "-p", "p", env=env) == (5, "environment (QWEX_*)")
    value, source = config_value(qwex, "grace_period", "-p", "p")
    assert value == 4 and source.startswith("profile 'p'")
    assert config_value(qwex, "grace_period") == (3, str(project / "qwex.toml"))
    assert seen_by_the_command(qwex, "-p", "p", "-e", "WHO=flag") == "flag"
    assert seen_by_the_command(qwex, "-p", "p") == "profile"
    assert seen_by_the_command(qwex) == "qwex.toml"

    (project / "qwex.toml").write_text(profile)
    assert config_value(qwex, "grace_period") == (2, f"{project / 'pyproject.toml'} [tool.qwex]")
    assert seen_by_the_command(qwex) == "pyproject"

    (project / "pyproject.toml").write_text("[tool.qwex]\n")
    assert config_value(qwex, "grace_period") == (1, str(user))
    assert seen_by_the_command(qwex) == "user"

    user.write_text("")
    assert config_value(qwex, "grace_period") == (10.0, "default")


def test_a_profile_overlays_only_the_keys_it_sets(project: Path, qwex: Qwex) -> None:
    """ "A profile overlays the files below it": keys it does not set keep their file values,
    and a table it sets is merged key by key."""
    (project / "qwex.toml").write_text(
        'grace_period = 3\n[env]\nWHO = "file"\nKEEP = "kept"\n[profiles.p.env]\nWHO = "profile"\n'
    )
    result = qwex("run", "-p", "p", "--", "sh", "-c", "echo $WHO $KEEP", check=True)
    assert result.stdout.strip() == "profile kept"
    assert config_value(qwex, "grace_period", "-p", "p") == (3, str(project / "qwex.toml"))


def test_qwex_profile_selects_between_the_file_default_and_the_flag(
    project: Path, qwex: Qwex
) -> None:
    """The profile is chosen by `-p NAME`, else `QWEX_PROFILE`, else `profile = "NAME"`."""
    (project / "qwex.toml").write_text(
        'profile = "fromfile"\n'
        '[profiles.fromfile.env]\nWHO = "fromfile"\n'
        '[profiles.fromenv.env]\nWHO = "fromenv"\n'
        '[profiles.fromflag.env]\nWHO = "fromflag"\n'
    )
    assert seen_by_the_command(qwex) == "fromfile"
    chosen = {"QWEX_PROFILE": "fromenv"}
    assert seen_by_the_command(qwex, env=chosen) == "fromenv"
    assert seen_by_the_command(qwex, "-p", "fromflag", env=chosen) == "fromflag"
    assert config_value(qwex, "profile", env=chosen) == ("fromenv", "QWEX_PROFILE")


def test_qwex_profile_naming_no_profile_is_one_clear_error(project: Path, qwex: Qwex) -> None:
    (project / "qwex.toml").write_text("[profiles.gpu]\ngrace_period = 1\n")
    result = qwex("run", "--", "true", env={"QWEX_PROFILE": "gpu2"})
    assert result.returncode == 1
    assert "gpu2" in result.stderr and "gpu" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert qwex("list", "-q").stdout == "", "no run may start with an unknown profile"


# -- --project and QWEX_PROJECT_DIR --------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path) -> tuple[Path, Path]:
    """Two projects: `other`, holding its own qwex.toml, and `target`, named by --project."""
    other = tmp_path / "other"
    target = tmp_path / "target"
    for folder, who in ((other, "other"), (target, "target")):
        folder.mkdir()
        (folder / "qwex.toml").write_text(f'[env]\nWHO = "{who}"\n')
    return other, target


def runs_in(project: Path) -> list[str]:
    runs = project / ".qwex" / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.exists() else []


@pytest.mark.parametrize("how", ["--project", "QWEX_PROJECT_DIR"])
def test_the_project_folder_can_be_named_from_anywhere(
    project: Path, elsewhere: tuple[Path, Path], qwex: Qwex, how: str
) -> None:
    """Run from inside another project: the run is recorded in the named folder and uses
    its configuration; the project qwex would have found is untouched."""
    other, target = elsewhere
    args = ["--project", str(target)] if how == "--project" else []
    env = {"QWEX_PROJECT_DIR": str(target)} if how == "QWEX_PROJECT_DIR" else None
    result = subprocess.run(
        [QWEX, *args, "run", "--", "sh", "-c", "echo $WHO"],
        cwd=other,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "target"
    assert len(runs_in(target)) == 1 and runs_in(other) == []
    listed = subprocess.run(
        [QWEX, *args, "list", "-q", "--no-trunc"],
        cwd=other,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.stdout.split() == runs_in(target)


def test_the_project_flag_beats_the_variable(
    project: Path, elsewhere: tuple[Path, Path], qwex: Qwex
) -> None:
    other, target = elsewhere
    result = qwex(
        "--project",
        str(target),
        "run",
        "--",
        "sh",
        "-c",
        "echo $WHO",
        env={"QWEX_PROJECT_DIR": str(other)},
        check=True,
    )
    assert result.stdout.strip() == "target"
    assert len(runs_in(target)) == 1 and runs_in(other) == []


def stop_if_live(qwex: Qwex, run_id: str) -> None:
    """After a failed test: the run (whose grace period is an hour) killed, not left going."""
    status = qwex("status", run_id, "--json")
    if status.returncode == 0 and json.loads(status.stdout)["status"] in LIVE:
        qwex("rm", "-f", run_id)


# -- a second Ctrl-C ----------------------------------------------------------------------


def test_a_second_ctrl_c_kills_the_run_at_once(project: Path, qwex: Qwex) -> None:
    """docs/runs.md: Ctrl-C cancels (the command gets SIGINT, SIGKILL after the grace
    period); a second Ctrl-C kills it at once. The command traps SIGINT and the grace
    period is an hour: only the second Ctrl-C can end it within the test."""
    (project / "qwex.toml").write_text("grace_period = 3600\n")
    script = "trap 'echo got-INT' INT; echo pid=$$; while :; do sleep 0.1; done"
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_id = "none"
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("pid="), first
        command = int(first.split("=")[1])
        run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "got-INT\n", "the command never saw the first Ctrl-C"
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "killing run" in err
        rec = wait_status(qwex, run_id)
        assert rec["status"] == "cancelled" and rec["signal"] == "SIGKILL", rec
    finally:
        if proc.poll() is None:
            proc.kill()
        stop_if_live(qwex, run_id)
    assert (
        not Path(f"/proc/{command}").exists()
        or " Z " in Path(f"/proc/{command}/stat").read_text().rsplit(")", 1)[1][:3]
    )


def test_two_ctrl_c_that_reach_a_busy_agent_together_still_kill(project: Path, qwex: Qwex) -> None:
    """Two signals of one kind sent before their receiver runs merge into one (the kernel
    keeps one pending bit per signal). The agent is stopped (SIGSTOP) while both Ctrl-C
    are pressed, as a loaded machine may leave it unscheduled, then continued: the second
    Ctrl-C must still count as a second one."""
    (project / "qwex.toml").write_text("grace_period = 3600\n")
    script = "trap 'echo got-INT' INT; echo pid=$$; while :; do sleep 0.1; done"
    proc = subprocess.Popen(
        [QWEX, "run", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    agent, run_id = 0, "none"
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("pid=")
        run_id = json.loads(qwex("list", "--json", check=True).stdout)[0]["id"]
        agent = int(json.loads(qwex("status", run_id, "--json", check=True).stdout)["agent_pid"])
        os.kill(agent, signal.SIGSTOP)
        proc.send_signal(signal.SIGINT)
        while "cancelling run" not in (line := proc.stderr.readline()):
            assert line, "qwex never said it cancels the run"
        proc.send_signal(signal.SIGINT)  # at once: perhaps while qwex sends the first
        while "killing run" not in (line := proc.stderr.readline()):
            assert line, "qwex never said it kills the run"
        os.kill(agent, signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        rec = wait_status(qwex, run_id)
        assert rec["status"] == "cancelled" and rec["signal"] == "SIGKILL", rec
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(agent, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
        stop_if_live(qwex, run_id)


# -- QWEX_PLUGINS --------------------------------------------------------------------------

EXTRA = """
    import click
    from qwex_core.plugin import hookimpl

    @hookimpl
    def qwex_register_commands(cli):
        @cli.command("extra-hello")
        def hello():
            '''Say hello from a plugin named by QWEX_PLUGINS.'''
            click.echo("hello from extra")

    @hookimpl
    def qwex_prepare_job(spec, config):
        spec.env["WHO"] = "extra plugin"
"""


def test_qwex_plugins_registers_extra_modules(
    project: Path, tmp_path: Path, qwex: Qwex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/plugins.md: `QWEX_PLUGINS=mod1,mod2` registers extra plugin modules (no entry
    point, no distribution): their commands and hooks take effect; without it, they don't."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "extra_plugin.py").write_text(textwrap.dedent(EXTRA))
    (site / "other_extra.py").write_text("")
    monkeypatch.setenv("PYTHONPATH", str(site))
    with_it = {"QWEX_PLUGINS": "other_extra, extra_plugin"}
    assert qwex("extra-hello", env=with_it, check=True).stdout == "hello from extra\n"
    assert seen_by_the_command(qwex, env=with_it) == "extra plugin"
    assert qwex("extra-hello").returncode == 2  # no such command without it
    assert seen_by_the_command(qwex) == ""


def test_a_missing_qwex_plugins_module_is_named(
    project: Path, qwex: Qwex, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = qwex("run", "--", "true", env={"QWEX_PLUGINS": "no_such_module_here"})
    assert "no_such_module_here" in result.stderr
    assert "Traceback" not in result.stderr
