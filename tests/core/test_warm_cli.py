"""The fast loop's forked CLI (tests/warm_cli.py) is a new process as far as qwex can tell:
what the test process imported or set since it started does not reach the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import qwex_core.timings
import warm_cli

SCRIPT = str(Path(sys.executable).parent / "qwex")


def test_the_child_reads_its_own_environment_into_freshly_imported_modules(
    project: Path,
) -> None:
    assert qwex_core.timings.TARGET is None  # read when this process imported it
    result = warm_cli.run(SCRIPT, ("--version",), project, {**os.environ, "QWEX_TIMINGS": "1"}, 30)
    assert result.returncode == 0, result.stderr
    assert "qwex-timing cli-start" in result.stderr
    assert qwex_core.timings.TARGET is None  # and nothing came back


def test_it_answers_as_the_console_script_does(project: Path) -> None:
    """Exit code, both streams and the working directory, against the script itself."""
    (project / "sub").mkdir()
    for args in (("list", "--json"), ("config", "--bogus"), ("status", "nothing")):
        forked = warm_cli.run(SCRIPT, args, project / "sub", dict(os.environ), 30)
        started = subprocess.run(
            [SCRIPT, *args], cwd=project / "sub", capture_output=True, text=True, timeout=30
        )
        assert (forked.returncode, forked.stdout, forked.stderr) == (
            started.returncode,
            started.stdout,
            started.stderr,
        ), args
    assert str(project) in forked.stdout + forked.stderr


def test_a_changed_interpreter_environment_is_not_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm_cli, "ENABLED", True)
    assert warm_cli.usable(dict(os.environ))
    assert warm_cli.usable({**os.environ, "PYTHONPATH": "/elsewhere"})  # put on the path
    assert not warm_cli.usable({**os.environ, "PYTHONSAFEPATH": "1"})
    assert not warm_cli.usable({**os.environ, "PYTHONHOME": "/elsewhere"})


def test_pythonpath_folders_come_after_the_scripts_as_the_interpreter_puts_them(
    tmp_path: Path, project: Path
) -> None:
    (tmp_path / "sitecheck.py").write_text("")
    probe = "import sys; print(sys.path[1])"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    started = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert started.stdout.strip() == str(tmp_path)
    assert warm_cli._python_path(str(tmp_path), ["/bin"]) == [str(tmp_path)]
    assert warm_cli._python_path(f"{tmp_path}:{tmp_path}", [str(tmp_path)]) == []
