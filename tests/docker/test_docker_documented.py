"""Promises of docs/docker.md that no other test checked, on the real daemon through the
real CLI: the host's environment stays out of the container (`QWEX_RUN_ID` is in it),
`container.mount_project = false` mounts nothing of the project, and `qwex gc` removes a
container whose run record is gone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, wait_gone

pytestmark = pytest.mark.docker

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
DOCKER = ["-b", "docker", "--image", BUSYBOX]


def only_run(project: Path) -> str:
    (name,) = os.listdir(project / ".qwex" / "runs")
    return name


def containers_of(api: Any, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.containers(
        all=True, filters={"label": f"qwex.run-id={run_id}"}
    )
    return found


def test_the_hosts_environment_is_not_passed(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    """ "-e KEY=VALUE, [tool.qwex] env: environment variables (plus QWEX_RUN_ID); the host's
    environment is not passed". The shell that runs qwex holds a variable of its own and its
    own PATH; the container sees neither, but sees what was asked for."""
    (project / "qwex.toml").write_text('[env]\nFROM_CONFIG = "config"\n')
    host = {"QWEX_TEST_HOST_ONLY": "leaked", "PASSED_BY_NAME": "named", "FROM_FLAG": "host"}
    result = qwex(
        "run", *DOCKER, "-e", "FROM_FLAG=flag", "-e", "PASSED_BY_NAME", "--", "env", env=host
    )
    assert result.returncode == 0, result.stderr
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert "QWEX_TEST_HOST_ONLY" not in seen, "the host's environment reached the container"
    assert seen.get("PATH") != os.environ["PATH"], "the host's PATH reached the container"
    assert seen["FROM_FLAG"] == "flag" and seen["PASSED_BY_NAME"] == "named"
    assert seen["FROM_CONFIG"] == "config"
    assert seen["QWEX_RUN_ID"] == only_run(project)
    wait_gone(docker_api, only_run(project))


def test_mount_project_false_mounts_nothing_of_the_project(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    """`container.mount_project = false`: the project is not in the container at all (not at
    the working directory, nowhere), and what the command writes stays out of it; the run
    record and logs still reach the host."""
    (project / "qwex.toml").write_text("[container]\nmount_project = false\n")
    (project / "only-on-the-host.txt").write_text("host\n")
    script = "pwd; ls -A; echo ---; cat /proc/self/mountinfo; echo written > made-here.txt"
    result = qwex("run", *DOCKER, "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    listing, mountinfo = result.stdout.split("---\n")
    assert listing.splitlines()[0] == "/workspace"
    assert "only-on-the-host.txt" not in listing, "the project was mounted"
    mounts = [line.split() for line in mountinfo.splitlines()]
    assert "/qwex-run" in [m[4] for m in mounts], "the run folder is mounted: sanity"
    assert "/workspace" not in [m[4] for m in mounts]
    assert not [m for m in mounts if m[3].endswith(project.name)], "the project is mounted"
    assert not (project / "made-here.txt").exists()
    wait_gone(docker_api, only_run(project))


def test_the_default_does_mount_the_project(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    """The counterpart: without the setting, the same file is at the working directory."""
    (project / "only-on-the-host.txt").write_text("host\n")
    result = qwex("run", *DOCKER, "--", "cat", "only-on-the-host.txt")
    assert (result.returncode, result.stdout) == (0, "host\n"), result.stderr
    wait_gone(docker_api, only_run(project))


def test_gc_removes_a_container_whose_run_record_is_gone(
    project: Path, qwex: Qwex, docker_ready: Any, docker_api: Any
) -> None:
    """ "qwex gc removes every qwex container on the daemon whose run is final or whose record
    is gone". A kept container (`keep_containers`) outlives its run; its run folder is then
    deleted by hand; `gc --dry-run` names it and removes nothing, `gc --force` removes it."""
    env = {"QWEX_DOCKER_KEEP_CONTAINERS": "true"}
    qwex("run", *DOCKER, "--", "true", env=env, check=True)
    run_id = only_run(project)
    (container,) = containers_of(docker_api, run_id)
    shutil.rmtree(project / ".qwex" / "runs" / run_id)

    listed = qwex("gc", "--dry-run", "--json", check=True)
    mine = [g for g in json.loads(listed.stdout) if g["run"] == run_id]
    assert len(mine) == 1, listed.stdout
    assert mine[0]["why"].startswith("no run record") and not mine[0]["removed"]
    assert containers_of(docker_api, run_id), "--dry-run removed it"

    removed = json.loads(qwex("gc", "--force", "--json", check=True).stdout)
    assert [(g["name"], g["removed"]) for g in removed if g["run"] == run_id] == [
        (container["Id"][:12], True)
    ]
    wait_gone(docker_api, run_id)
