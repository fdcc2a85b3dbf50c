"""A wrong project is an error, never an empty project or a new folder."""

from __future__ import annotations

from pathlib import Path

from cli_support import Qwex


def test_a_project_folder_that_does_not_exist_is_an_error(
    project: Path, qwex: Qwex, tmp_path: Path
) -> None:
    missing = tmp_path / "nonexistent"
    listed = qwex("--project", str(missing), "list")
    assert listed.returncode == 1
    assert listed.stderr.count("\n") == 1 and str(missing) in listed.stderr
    assert "--project" in listed.stderr and listed.stdout == ""

    started = qwex("run", "--", "true", env={"QWEX_PROJECT_DIR": str(missing)})
    assert started.returncode == 1
    assert str(missing) in started.stderr and "QWEX_PROJECT_DIR" in started.stderr
    assert not missing.exists()

    a_file = tmp_path / "file"
    a_file.write_text("")
    not_a_folder = qwex("--project", str(a_file), "status", "x")
    assert not_a_folder.returncode in (1, 2) and str(a_file) in not_a_folder.stderr
    # A folder that exists is a project, with or without .qwex.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert qwex("--project", str(empty), "list").returncode == 0
    qwex("--project", str(empty), "run", "--", "true", check=True)
    assert (empty / ".qwex" / "runs").is_dir()
