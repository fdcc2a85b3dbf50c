"""Docker jobs run by an ordinary user (qwex-user, in the `docker` group, its own venv of
Debian's Python): the files it gets back are its own, list/logs/cancel/gc work, nothing is
left behind, and a second user (qwex-other) cannot change a run's record or logs, whoever
the container runs as."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from users import IMAGE_UID, OTHER, USER, give, qwex_as, tamper, world_writable

pytestmark = [pytest.mark.users, pytest.mark.docker, pytest.mark.slow]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def only_run(project: Path) -> Path:
    (run_dir,) = (project / ".qwex" / "runs").iterdir()
    return run_dir


def containers_of(run_id: str) -> list[dict[str, Any]]:
    from qwex_docker.client import connect

    found: list[dict[str, Any]] = connect(None, 30).containers(
        all=True, filters={"label": f"qwex.run-id={run_id}"}
    )
    return found


def assert_no_container_left(run_id: str) -> None:
    """The daemon may still be auto-removing the container when qwex returns."""
    deadline = time.monotonic() + 10
    while containers_of(run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containers_of(run_id) == []


def assert_others_cannot_change(run_dir: Path, *others: str) -> None:
    assert world_writable(run_dir.parent.parent) == []
    before = snapshot(run_dir)
    for other in others:
        assert tamper(other, run_dir) == [], f"{other} changed {run_dir}"
    assert snapshot(run_dir) == before


@pytest.fixture
def docker_project(user_project: Path, user_agent_dir: Path) -> Path:
    """qwex-user's project, its Docker agent taken from the copy this session made."""
    (user_project / "qwex.toml").write_text(f'[docker]\nagent_dir = "{user_agent_dir}"\n')
    return user_project


def test_docker_job_as_user_writes_files_that_are_the_users(
    user_bin: Path, docker_project: Path, docker_images: dict[str, str]
) -> None:
    account = pwd.getpwnam(USER)
    done = qwex_as(
        USER,
        user_bin,
        docker_project,
        *("run", "-b", "docker", "--image", docker_images["busybox"], "--"),
        *("sh", "-c", "id -u; echo data > made.txt"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{account.pw_uid}\n"
    made = docker_project / "made.txt"
    assert made.read_text() == "data\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (account.pw_uid, account.pw_gid)

    run_dir = only_run(docker_project)
    short = run_dir.name[-12:]
    listed = qwex_as(USER, user_bin, docker_project, "list")
    assert short in listed.stdout and "succeeded" in listed.stdout, listed.stderr
    logs = qwex_as(USER, user_bin, docker_project, "logs", short)
    assert logs.stdout == f"{account.pw_uid}\n", logs.stderr
    store = docker_project / ".qwex"
    assert all(p.stat().st_uid == account.pw_uid for p in [store, *store.rglob("*")])
    assert_others_cannot_change(run_dir, OTHER)
    assert_no_container_left(run_dir.name)


def test_user_cancels_a_docker_run_and_gc_removes_its_kept_container(
    user_bin: Path, docker_project: Path, docker_images: dict[str, str]
) -> None:
    keep = {"QWEX_DOCKER_KEEP_CONTAINERS": "true"}
    image = docker_images["busybox"]
    started = qwex_as(
        USER, user_bin, docker_project, *("run", "-d", "--no-trunc", "-b", "docker"),
        *("--image", image),
        *("--", "sleep", "60"), env=keep,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    cancelled = qwex_as(USER, user_bin, docker_project, "cancel", run_id, env=keep)
    assert cancelled.returncode == 0, cancelled.stderr
    qwex_as(USER, user_bin, docker_project, "wait", run_id, env=keep, timeout=60)
    status = qwex_as(USER, user_bin, docker_project, "status", run_id, env=keep)
    assert "cancelled" in status.stdout, (status.stdout, status.stderr)
    assert containers_of(run_id), "keep_containers kept no container"

    gc = qwex_as(USER, user_bin, docker_project, "gc", "--force", env=keep)
    assert gc.returncode == 0, gc.stderr
    assert containers_of(run_id) == []
    assert_others_cannot_change(only_run(docker_project), OTHER)


@pytest.mark.parametrize("image_user", ["root", "named"])
def test_the_images_own_user_writes_the_run_but_other_users_cannot(
    user_bin: Path, docker_project: Path, docker_images: dict[str, str], image_user: str
) -> None:
    """`container.user = "image"`: the image's USER (root, or 4321 that is no user here)
    writes the record and logs through qwex-user's own group, and no one else can."""
    account = pwd.getpwnam(USER)
    with (docker_project / "qwex.toml").open("a") as toml:
        toml.write('[container]\nuser = "image"\n')
    image = docker_images["busybox" if image_user == "root" else "with-user"]
    done = qwex_as(
        USER, user_bin, docker_project, *("run", "-b", "docker", "--image", image),
        *("--", "sh", "-c", "id -u; id -G"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    uid, groups = done.stdout.split("\n")[:2]
    assert uid == ("0" if image_user == "root" else str(IMAGE_UID))
    assert str(account.pw_gid) in groups.split()

    run_dir = only_run(docker_project)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o2770
    assert run_dir.stat().st_gid == account.pw_gid
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded"
    assert_others_cannot_change(run_dir, OTHER)

    removed = qwex_as(USER, user_bin, docker_project, "rm", run_dir.name[-12:])
    assert removed.returncode == 0, removed.stderr
    assert not run_dir.exists()
    assert_no_container_left(run_dir.name)


@pytest.mark.parametrize("container_user", ["default", "image"])
def test_root_shares_its_runs_with_no_local_user(
    user_root: Path, user_agent_dir: Path, docker_images: dict[str, str], container_user: str
) -> None:
    """Root invoking: the container runs as root, or as the image's user 4321, which is given
    root's group; no local user can change the run either way."""
    project = Path(tempfile.mkdtemp(prefix="root-project-", dir=user_root))
    project.chmod(0o755)
    toml = f'[docker]\nagent_dir = "{user_agent_dir}"\n'
    if container_user == "image":
        toml += '[container]\nuser = "image"\n'
    (project / "qwex.toml").write_text(toml)
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "qwex"),
            *("run", "-b", "docker", "--image", docker_images["with-user"]),
            *("--", "sh", "-c", "id -u; echo to-stderr >&2"),
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("QWEX_")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{IMAGE_UID if container_user == 'image' else 0}\n"
    run_dir = only_run(project)
    assert (run_dir / "stderr.log").read_text() == "to-stderr\n"
    assert run_dir.stat().st_gid == 0
    assert_others_cannot_change(run_dir, USER, OTHER)
    assert_no_container_left(run_dir.name)


def test_a_primary_group_shared_with_others_is_refused_for_an_image_user(
    user_bin: Path, docker_project: Path, docker_images: dict[str, str]
) -> None:
    """qwex-user with `docker` as its primary group (a group other people are in): sharing the
    run through it would open the run to them, so qwex says so and starts nothing."""
    with (docker_project / "qwex.toml").open("a") as toml:
        toml.write('[container]\nuser = "image"\n')
    give(docker_project, USER)
    assert grp.getgrnam("docker")
    done = qwex_as(
        USER, user_bin, docker_project, *("run", "-b", "docker", "--image"),
        *(docker_images["with-user"], "--", "true"), group="docker",
    )  # fmt: skip
    assert done.returncode != 0
    assert "primary group docker is not yours alone" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (docker_project / ".qwex" / "runs").exists() or not any(
        (docker_project / ".qwex" / "runs").iterdir()
    )
