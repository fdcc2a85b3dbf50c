"""How a Docker run's follower waits: back as soon as the agent wrote the record or a log
(not a poll interval later), and the SDK's import leaves Python's garbage collector as it
found it. No daemon needed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from qwex_docker.watch import Changes


def later(seconds: float, change: Any) -> threading.Thread:
    thread = threading.Timer(seconds, change)
    thread.start()
    return thread


def test_a_record_replaced_by_rename_ends_the_wait(tmp_path: Path) -> None:
    """As the agent writes run.json: a new file renamed over the old one."""
    record = tmp_path / "run.json"
    record.write_text("{}")
    changes = Changes([record, tmp_path / "stdout.log"])

    def replace() -> None:
        (tmp_path / ".run.json.tmp").write_text("{}")  # same size, maybe the same mtime
        os.replace(tmp_path / ".run.json.tmp", record)

    writer = later(0.2, replace)
    assert changes.wait(60), "the wait did not notice the new record"
    writer.join()


def test_a_log_that_appears_or_grows_ends_the_wait(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    changes = Changes([tmp_path / "run.json", log])
    writer = later(0.2, lambda: log.write_text("hi\n"))
    assert changes.wait(60), "the wait did not notice the new log"
    writer.join()
    writer = later(0.2, lambda: log.open("a").write("more\n"))
    assert changes.wait(60), "the wait did not notice the log grow"
    writer.join()


def test_without_a_change_the_wait_lasts_its_time(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    changes = Changes([tmp_path / "run.json"])
    started = time.monotonic()
    assert not changes.wait(0.3)
    assert time.monotonic() - started >= 0.3  # it waited its whole time: no early return


def test_a_change_made_between_two_waits_is_not_missed(tmp_path: Path) -> None:
    """The follower reads between two waits; what the agent wrote meanwhile ends the next."""
    log = tmp_path / "stdout.log"
    changes = Changes([log])
    changes.wait(0.01)
    log.write_text("written while the follower was reading\n")
    assert changes.wait(60), "the change made between two waits was missed"


@pytest.mark.parametrize("enabled", [True, False])
def test_importing_the_sdk_leaves_the_garbage_collector_as_it_was(enabled: bool) -> None:
    """The SDK is imported without the collector (a run starts faster so), which must not
    leave it off in a process that embeds qwex, nor turn it on where it was off. A fresh
    interpreter each, where the SDK is not imported yet."""
    code = (
        "import gc, sys\n"
        "from qwex_docker.client import import_sdk\n"
        f"gc.enable() if {enabled} else gc.disable()\n"
        "import_sdk()\n"
        "assert 'docker.api.client' in sys.modules\n"
        f"assert gc.isenabled() is {enabled}, gc.isenabled()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
