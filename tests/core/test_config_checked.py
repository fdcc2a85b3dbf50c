"""Configuration is checked in every layer and every profile, through the real CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def test_a_bad_value_overridden_by_a_higher_layer_still_stops_qwex(
    project: Path, qwex: Qwex
) -> None:
    (project / "qwex.toml").write_text('grace_period = "soon"\n')
    result = qwex("config", env={"QWEX_GRACE_PERIOD": "3"})
    assert result.returncode == 1
    assert "qwex.toml" in result.stderr and "grace_period" in result.stderr
    assert "soon" in result.stderr


def test_a_bad_variable_overridden_by_a_flag_still_stops_qwex(project: Path, qwex: Qwex) -> None:
    result = qwex("run", "--cpu", "2", "--", "true", env={"QWEX_RESOURCES_CPU": "lots"})
    assert result.returncode == 1
    assert "QWEX_" in result.stderr and "resources.cpu" in result.stderr
    assert json.loads(qwex("list", "--json").stdout or "[]") == []


def test_a_bad_key_in_a_profile_not_selected_stops_qwex(project: Path, qwex: Qwex) -> None:
    (project / "qwex.toml").write_text(
        '[profiles.good]\nbackend = "local"\n\n[profiles.typo]\nbakend = "local"\n'
    )
    result = qwex("run", "-p", "good", "--", "true")
    assert result.returncode == 1
    assert "profiles.typo" in result.stderr and "bakend" in result.stderr


def test_a_bad_user_file_value_under_a_project_value_stops_qwex(
    project: Path, qwex: Qwex, tmp_path: Path
) -> None:
    user = tmp_path / "xdg" / "qwex"
    user.mkdir(parents=True)
    (user / "config.toml").write_text("[resources]\ngpu = -1.5\n")
    (project / "qwex.toml").write_text("[resources]\ngpu = 1\n")
    result = qwex("config", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert result.returncode == 1
    assert "config.toml" in result.stderr and "resources.gpu" in result.stderr


def test_config_shows_each_key_once_and_lists_the_profiles(project: Path, qwex: Qwex) -> None:
    (project / "qwex.toml").write_text(
        'image = "python:3.11"\n[profiles.gpu]\nbackend = "local"\n[profiles.big]\ncpu = 1\n'.replace(
            "cpu = 1", "resources = { cpu = 8 }"
        )
    )
    result = qwex("config", check=True)
    keys = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert len(keys) == len(set(keys)), keys
    assert "container.image" not in keys and "image" in keys
    [profiles] = [line for line in result.stdout.splitlines() if line.startswith("profiles ")]
    assert '["big", "gpu"]' in profiles and "qwex.toml" in profiles
    values = json.loads(qwex("config", "--json", check=True).stdout)["values"]
    assert len({v["key"] for v in values}) == len(values)
