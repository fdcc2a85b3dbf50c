"""The server's log streams wake on a write to the run's folder (inotify), not at the next
poll: a wait far longer than the test ends as soon as a log or the record changes."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from qwex_remote.server.changes import FolderChanges

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")


def waits_until(folder: Path, change: str) -> bool:
    """Whether a 10-minute wait on `folder` ends once `change` happens to it."""
    with FolderChanges(folder) as changes:
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (changes.wait(600), done.set()), daemon=True)
        waiter.start()
        if change == "append":
            with open(folder / "stdout.log", "ab") as fh:
                fh.write(b"a line\n")
        else:  # the agent replaces its record by a rename
            (folder / "record.json.tmp").write_text("{}")
            os.replace(folder / "record.json.tmp", folder / "record.json")
        return done.wait(30)


@pytest.mark.parametrize("change", ["append", "replace"])
def test_a_wait_ends_when_the_run_folder_changes(tmp_path: Path, change: str) -> None:
    (tmp_path / "stdout.log").write_bytes(b"")
    assert waits_until(tmp_path, change)


def test_a_folder_that_cannot_be_watched_falls_back_to_sleeping(tmp_path: Path) -> None:
    changes = FolderChanges(tmp_path / "missing")
    changes.wait(0.01)  # returns after the time asked, as a poll does
    changes.close()
