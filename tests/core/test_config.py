"""Configuration: precedence, profiles, environment, and errors that name file and key."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel
from qwex_core.config import load_config
from qwex_core.errors import ConfigError

Qwex = Callable[..., subprocess.CompletedProcess[str]]


class DockerSection(BaseModel):
    model_config = {"extra": "forbid"}
    network: str = "none"
    socket: str | None = None


def write_pyproject(project: Path, body: str) -> Path:
    path = project / "pyproject.toml"
    path.write_text(body)
    return path


def test_precedence_user_project_profile_env_flags(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each key is set in every layer up to the one that must win it, so each layer is seen
    # to override the one below: ignoring any layer changes a value or its source.
    user = tmp_path / "xdg" / "qwex" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text(
        'image = "user"\ngrace_period = 1\n[resources]\ncpu = 1\n'
        '[env]\nA = "user"\nB = "user"\nC = "user"\n'
    )
    pyproject = write_pyproject(
        project,
        '[tool.qwex]\nimage = "pyproject"\ngrace_period = 2\n[tool.qwex.resources]\ncpu = 2\n'
        '[tool.qwex.env]\nA = "pyproject"\nB = "pyproject"\n'
        '[tool.qwex.profiles.gpu]\nimage = "profile"\ngrace_period = 7\n'
        "[tool.qwex.profiles.gpu.resources]\ncpu = 7\ngpu = 1\n",
    )
    qwex_toml = project / "qwex.toml"
    qwex_toml.write_text(
        'image = "qwex.toml"\ngrace_period = 3\n[resources]\ncpu = 3\n[env]\nA = "qwex.toml"\n'
    )
    monkeypatch.setenv("QWEX_IMAGE", "env")
    monkeypatch.setenv("QWEX_GRACE_PERIOD", "9")
    cfg = load_config(project, {}, profile="gpu", flags={("image",): ("flag", "--image")})

    def value_and_source(*key: str) -> tuple[object, str]:
        value: object = cfg.core
        for part in key:
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        return value, cfg.source_of(key)

    profile = f"profile 'gpu' ({pyproject} [tool.qwex])"
    assert value_and_source("env", "C") == ("user", str(user))
    assert value_and_source("env", "B") == ("pyproject", f"{pyproject} [tool.qwex]")
    assert value_and_source("env", "A") == ("qwex.toml", str(qwex_toml))
    assert value_and_source("resources", "cpu") == (7, profile)
    assert value_and_source("resources", "gpu") == (1, profile)
    assert value_and_source("grace_period") == (9, "environment (QWEX_*)")
    assert value_and_source("image") == ("flag", "--image")


def test_plugin_section_is_validated_by_its_model(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(project, '[tool.qwex.docker]\nnetwork = "host"\n')
    monkeypatch.setenv("QWEX_DOCKER_SOCKET", "/run/x.sock")
    cfg = load_config(project, {"docker": DockerSection})
    assert cfg.section("docker", DockerSection) == DockerSection(
        network="host", socket="/run/x.sock"
    )


def test_bad_value_names_file_key_and_expectation(project: Path) -> None:
    path = write_pyproject(project, '[tool.qwex]\ngrace_period = "soon"\n')
    with pytest.raises(ConfigError) as err:
        load_config(project, {})
    message = str(err.value)
    assert (
        f"{path} [tool.qwex]" in message
        and "'grace_period'" in message
        and "valid number" in message
    )


def test_unknown_key_lists_the_known_ones(project: Path) -> None:
    write_pyproject(project, '[tool.qwex]\nbakend = "docker"\n')
    with pytest.raises(ConfigError, match=r"key 'bakend': unknown key; expected one of: .*backend"):
        load_config(project, {})


def test_plugin_section_error_names_the_section_key(project: Path) -> None:
    write_pyproject(project, '[tool.qwex.docker]\nnetwrk = "host"\n')
    with pytest.raises(ConfigError, match=r"key 'docker.netwrk': unknown key"):
        load_config(project, {"docker": DockerSection})


def test_unknown_profile_and_bad_toml(project: Path) -> None:
    write_pyproject(project, "[tool.qwex.profiles.gpu]\n")
    with pytest.raises(ConfigError, match=r"unknown profile 'cpu' \(profiles: gpu\)"):
        load_config(project, {}, profile="cpu")
    write_pyproject(project, "[tool.qwex\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(project, {})


def test_cli_config_shows_sources_and_profile_selects_backend_settings(
    project: Path, qwex: Qwex
) -> None:
    write_pyproject(
        project, '[tool.qwex]\nprofile = "quick"\n[tool.qwex.profiles.quick]\ngrace_period = 2\n'
    )
    data = json.loads(qwex("config", "--json", check=True).stdout)
    values = {v["key"]: v for v in data["values"]}
    assert data["profile"] == "quick"
    assert (
        values["grace_period"]["value"] == 2.0
        and "profile 'quick'" in values["grace_period"]["source"]
    )
    assert values["backend"]["source"] == "default"
    bad = qwex("run", "-p", "nope", "--", "true")
    assert bad.returncode == 1 and "unknown profile 'nope'" in bad.stderr


def test_bad_config_file_stops_run_with_one_message(project: Path, qwex: Qwex) -> None:
    write_pyproject(project, '[tool.qwex.resources]\nmemory = "lots"\n')
    result = qwex("run", "--", "true")
    assert result.returncode == 1
    assert "pyproject.toml [tool.qwex]: key 'resources.memory': not a memory size" in result.stderr
    assert "Traceback" not in result.stderr and not (project / ".qwex" / "runs").exists()
