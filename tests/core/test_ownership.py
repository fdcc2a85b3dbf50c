"""Ownership of what backends create: proven by the project's store id on this machine,
never by a host name or a missing folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qwex_core.garbage import why_removable
from qwex_core.ownership import STORE_ID_FILE, is_ours, owner_token


def test_a_project_owns_what_carries_its_token_and_nothing_else(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    token = owner_token(mine)
    assert token is not None and owner_token(mine) == token  # stable: made once
    assert is_ours(str(mine), token)
    assert not is_ours(str(other), token)  # no store id there: nothing there is its own
    assert not (other / ".qwex").exists()  # asking created nothing
    assert owner_token(other) != token
    assert not is_ours(str(mine), None) and not is_ours(None, token)


def test_a_copied_or_replaced_store_id_does_not_prove_ownership(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    token = owner_token(project)
    (project / ".qwex" / STORE_ID_FILE).write_text("someone-elses\n")
    assert not is_ours(str(project), token)


def test_a_store_id_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "p", tmp_path / "elsewhere"
    (project / ".qwex").mkdir(parents=True)
    elsewhere.mkdir()
    token = owner_token(elsewhere)
    (project / ".qwex" / STORE_ID_FILE).symlink_to(elsewhere / ".qwex" / STORE_ID_FILE)
    assert not is_ours(str(project), token)


def test_garbage_needs_proven_ownership(tmp_path: Path) -> None:
    """A leftover whose run folder is missing is garbage only when its project proves it
    ours; one of a project that does not is left alone, whatever its folder says."""
    project = tmp_path / "p"
    run_dir = project / ".qwex" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    token = owner_token(project)
    missing = str(project / ".qwex" / "runs" / "gone")
    assert why_removable(missing, str(project), dry_run=True, owner=token) is not None
    assert why_removable(missing, str(project), dry_run=True, owner=None) is None
    assert why_removable(missing, str(project), dry_run=True, owner="f" * 32) is None
    (run_dir / "run.json").write_text(json.dumps({"id": "r1", "status": "succeeded"}))
    assert why_removable(str(run_dir), str(project), dry_run=True, owner=token) == (
        "its run is succeeded"
    )


def test_garbage_without_an_owner_argument_still_works_with_a_warning(tmp_path: Path) -> None:
    """A backend written against the earlier API keeps working, warned."""
    with pytest.warns(DeprecationWarning, match="owner="):
        why = why_removable(str(tmp_path / "gone"), str(tmp_path), dry_run=True)
    assert why is not None and "no run record" in why
