"""Errors a user can act on, and where the runs go, through the real `qwex` console script."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def test_a_damaged_record_is_named_and_listed_as_unreadable(project: Path, qwex: Qwex) -> None:
    good = qwex("run", "-d", "--no-trunc", "--", "true", check=True).stdout.strip()
    bad = qwex("run", "-d", "--no-trunc", "--", "true", check=True).stdout.strip()
    qwex("wait", good, bad)
    record = project / ".qwex" / "runs" / bad / "run.json"
    record.write_text('{"id": "half-writ')

    result = qwex("status", bad[-12:])
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("qwex: error: ") and str(record) in result.stderr
    assert "internal error" not in result.stderr
    logs = qwex("logs", bad[-12:])  # the logs are intact: they print, after a warning
    assert logs.returncode == 0 and logs.stdout == "" and str(record) in logs.stderr

    rows = [line.split() for line in qwex("list", check=True).stdout.splitlines()[1:]]
    assert [row[:2] for row in rows] == [[bad[-12:], "unreadable"], [good[-12:], "succeeded"]]
    listed = json.loads(qwex("list", "--json", check=True).stdout)
    assert listed[0]["status"] == "unreadable" and str(record) in listed[0]["reason"]
    assert qwex("rm", bad).returncode == 1
    qwex("rm", "-f", bad, check=True)
    assert [r["id"] for r in json.loads(qwex("list", "--json").stdout)] == [good]


def test_usage_errors_create_no_run(project: Path, qwex: Qwex) -> None:
    missing = qwex("run", "--workdir", str(project / "nope"), "--", "true")
    assert missing.returncode == 2 and "--workdir" in missing.stderr
    empty = qwex("run", "")
    assert empty.returncode == 2 and "the command is empty" in empty.stderr
    assert not (project / ".qwex" / "runs").exists() or not os.listdir(project / ".qwex" / "runs")


def test_an_unknown_backend_says_where_it_came_from(project: Path, qwex: Qwex) -> None:
    flag = qwex("run", "-b", "dokcer", "--", "true")
    assert flag.returncode == 1
    assert "unknown backend 'dokcer' from the flag --backend (installed: " in flag.stderr
    assert "installed: " in flag.stderr and "local" in flag.stderr
    assert "qwex-docker" in flag.stderr and "qwex-dokcer" not in flag.stderr
    env = qwex("run", "--", "true", env={"QWEX_BACKEND": "kube"})
    assert (
        "'kube' from the variable QWEX_BACKEND (installed" in env.stderr
        and "qwex-kube" not in env.stderr
    )
    (project / "qwex.toml").write_text('backend = "dokcer"\n')
    file = qwex("run", "--", "true")
    assert f"'dokcer' from {project / 'qwex.toml'}, key backend, (installed" in file.stderr
    (project / "qwex.toml").write_text('[profiles.gpu]\nbackend = "k9s"\n')
    profile = qwex("run", "-p", "gpu", "--", "true")
    assert "unknown backend 'k9s' from profile 'gpu'" in profile.stderr


def test_list_filters_say_what_is_valid(project: Path, qwex: Qwex) -> None:
    assert "no runs yet" in qwex("list").stderr
    qwex("run", "--", "true", check=True)
    nothing = qwex("list", "-s", "running")
    assert nothing.returncode == 0 and "no runs match" in nothing.stderr
    status = qwex("list", "--filter", "status=runing")
    assert status.returncode == 2 and "pending, queued, running" in status.stderr
    backend = qwex("list", "-b", "dokcer")  # a filter needs no plugin, but a typo is named
    assert backend.returncode == 0 and "'dokcer' is not installed" in backend.stderr


def test_outside_a_project_qwex_says_once_where_runs_go(tmp_path: Path, qwex: Qwex) -> None:
    home = tmp_path / "home"
    loose = tmp_path / "loose" / "dir"
    loose.mkdir(parents=True)
    home.mkdir()
    env = {"HOME": str(home), "QWEX_PROJECT_DIR": "", "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    first = qwex("run", "--", "true", cwd=loose, env=env, check=True)
    assert f"qwex: creating .qwex/ in {loose} " in first.stderr
    assert (loose / ".qwex" / "runs").is_dir()
    second = qwex("run", "--", "true", cwd=loose, env=env, check=True)
    assert "creating" not in second.stderr
    # From a sub-folder, the nearest .qwex above is used, silently.
    (loose / "sub").mkdir()
    third = qwex("run", "--", "true", cwd=loose / "sub", env=env, check=True)
    assert "creating" not in third.stderr and len(os.listdir(loose / ".qwex" / "runs")) == 3

    in_home = qwex("run", "--", "true", cwd=home, env=env, check=True)
    assert f"creating .qwex/ in your home directory {home}" in in_home.stderr
    # A home folder that is a git repository (dotfiles) is still announced.
    (home / "code").mkdir()
    (home / ".qwex").rename(tmp_path / "old-qwex")
    (home / ".git").mkdir()
    below = qwex("run", "--", "true", cwd=home / "code", env=env, check=True)
    assert "your home directory" in below.stderr and (home / ".qwex" / "runs").is_dir()
    # A project folder gets its .qwex quietly.
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text("")
    quiet = qwex("run", "--", "true", cwd=tmp_path / "proj", env=env, check=True)
    assert "creating" not in quiet.stderr
