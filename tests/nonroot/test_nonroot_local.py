"""A local job run by an ordinary user (qwex-user, its own venv of Debian's Python):
everything it makes is its own, and a second user (qwex-other) cannot change the run."""

from __future__ import annotations

import json
import pwd
from pathlib import Path

import pytest
from users import OTHER, USER, as_user, qwex_as, tamper, world_writable

pytestmark = [pytest.mark.users, pytest.mark.slow]


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}


def run_id_of(project: Path) -> str:
    (run_dir,) = (project / ".qwex" / "runs").iterdir()
    return run_dir.name


def test_local_job_as_user_is_the_users_and_other_users_cannot_change_it(
    user_bin: Path, user_project: Path
) -> None:
    uid = pwd.getpwnam(USER).pw_uid
    done = qwex_as(
        USER, user_bin, user_project, "run", "--", "sh", "-c", "echo hello; echo data > made.txt"
    )
    assert done.returncode == 0, done.stderr
    assert "hello" in done.stdout
    made = user_project / "made.txt"
    assert made.read_text() == "data\n"
    assert made.stat().st_uid == uid

    run_id = run_id_of(user_project)
    listed = qwex_as(USER, user_bin, user_project, "list")
    assert listed.returncode == 0, listed.stderr
    assert run_id[-12:] in listed.stdout and "succeeded" in listed.stdout
    logs = qwex_as(USER, user_bin, user_project, "logs", run_id[-12:])
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "hello\n"

    store = user_project / ".qwex"
    assert all(p.stat().st_uid == uid for p in [store, *store.rglob("*")])
    assert world_writable(store) == []

    run_dir = store / "runs" / run_id
    before = snapshot(run_dir)
    assert tamper(OTHER, run_dir) == []
    assert snapshot(run_dir) == before
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "succeeded"


def test_user_cancels_a_local_run(user_bin: Path, user_project: Path) -> None:
    started = qwex_as(USER, user_bin, user_project, "run", "-d", "--", "sleep", "60")
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip()
    cancelled = qwex_as(USER, user_bin, user_project, "cancel", run_id)
    assert cancelled.returncode == 0, cancelled.stderr
    waited = qwex_as(USER, user_bin, user_project, "wait", run_id, timeout=60)
    status = qwex_as(USER, user_bin, user_project, "status", run_id)
    assert "cancelled" in status.stdout, (waited.stdout, status.stdout, status.stderr)
    assert world_writable(user_project / ".qwex") == []


def test_nothing_qwex_stores_is_world_writable_even_under_umask_000(
    user_bin: Path, user_project: Path
) -> None:
    """A user whose umask lets everyone write still gets a store no one else can change."""
    qwex = str(user_bin / "qwex")
    script = f"umask 000; {qwex} run --name named -- true && {qwex} run -d -- sleep 30"
    started = as_user(USER, ["/bin/sh", "-c", script], cwd=user_project)
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.strip().splitlines()[-1]
    cancel = as_user(
        USER, ["/bin/sh", "-c", f"umask 000; {qwex} cancel {run_id}"], cwd=user_project
    )
    assert cancel.returncode == 0, cancel.stderr
    qwex_as(USER, user_bin, user_project, "wait", run_id, timeout=60)
    assert world_writable(user_project / ".qwex") == []
    for run_dir in (user_project / ".qwex" / "runs").iterdir():
        assert tamper(OTHER, run_dir) == []


def test_resource_limits_a_user_cannot_enforce_are_named_and_the_run_still_works(
    user_bin: Path, user_project: Path
) -> None:
    """An ordinary user cannot make a cgroup on a machine that delegates none: one line
    names the flags, why, and what would do it; the command runs unlimited."""
    done = qwex_as(
        USER, user_bin, user_project, "run", "--memory", "64Mi", "--cpu", "0.5", "--", "echo", "hi"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    lines = [line for line in done.stderr.splitlines() if "not enforced" in line]
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert "--memory 64Mi" in line and "--cpu 0.5" in line, line
    assert f"user {USER}" in line and "root" in line and "delegated" in line, line
    record = json.loads(
        qwex_as(USER, user_bin, user_project, "status", run_id_of(user_project), "--json").stdout
    )
    assert record["status"] == "succeeded" and not record["backend_data"].get("cgroups")
