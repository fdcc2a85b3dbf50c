"""The optional parts of core's observed-run contract, with the guide's far backend made to
push its log (`tests/core/far_push.py`): output pushed by the far side reaches the run's log
while it runs, two followers copy each byte once, pieces keep the far side's times in the
write-order index, and an observation's note lands in the record."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import pytest
from far_support import far_backend, far_package, far_root
from qwex_core.jobs import overrides
from qwex_core.logs import LogReader
from qwex_core.models import Run, RunStatus
from qwex_core.plugin import hookimpl
from qwex_core.plugin.manager import PluginHost
from qwex_core.pushed import LogBytes, LogCopy, record_lock
from qwex_core.service import RunService, open_service

__all__ = ["far_backend", "far_package"]  # fixtures, used by name


class PushPlugin:
    @hookimpl
    def qwex_register_runners(self, register: object) -> None:
        register("far", "far_push:PushingFar", description="pushes its log")  # type: ignore[operator]


def open_far(project: Path) -> RunService:
    importlib.import_module("qwex_far.runner")
    host = PluginHost(plugins=[("far", PushPlugin())])
    return open_service(project, host=host, flags=overrides({"backend": "far"}))


def local_stdout(service: RunService, run: Run) -> bytes:
    return service.store.log_path(run.id, "stdout").read_bytes()


def wait_end(service: RunService, run: Run) -> Run:
    deadline = time.monotonic() + 30
    while not (run := service.observe(run.id)).is_final:
        assert time.monotonic() < deadline, run.status
        service.wait_for_change(run, 0.2)
    return run


def test_pushed_output_reaches_the_run_while_it_runs(qwex_project: Path) -> None:
    service = open_far(qwex_project)
    far_root().mkdir(parents=True, exist_ok=True)
    (far_root() / "no-reads").touch()  # only the push can copy
    run = service.submit(service.job(["sh", "-c", "echo first; sleep 30"]))
    deadline = time.monotonic() + 15
    while b"first\n" not in local_stdout(service, run):
        assert time.monotonic() < deadline, "the pushed line never reached the run's log"
        service.wait_for_change(service.get(run.id), 0.5)
    assert not service.get(run.id).is_final
    service.cancel(service.get(run.id))
    (far_root() / "no-reads").unlink()
    assert wait_end(service, run).status is RunStatus.CANCELLED


def test_two_followers_copy_each_pushed_byte_once(qwex_project: Path) -> None:
    first, second = open_far(qwex_project), open_far(qwex_project)
    script = "for i in 1 2 3 4 5 6 7 8; do echo line-$i; echo err-$i >&2; sleep 0.1; done"
    run = first.submit(first.job(["sh", "-c", script]))
    for _ in range(40):  # both follow it from the start: each has its own follower
        for service in (first, second):
            service.wait_for_change(service.get(run.id), 0.05)
    final = wait_end(first, run)
    assert final.status is RunStatus.SUCCEEDED
    assert local_stdout(first, run) == b"".join(b"line-%d\n" % i for i in range(1, 9))
    stderr = first.store.log_path(run.id, "stderr").read_bytes()
    assert stderr == b"".join(b"err-%d\n" % i for i in range(1, 9))


@pytest.mark.parametrize("push", [True, False], ids=["pushed", "read"])
def test_copied_pieces_keep_the_far_sides_times(
    qwex_project: Path, push: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from far_push import STAMP

    if not push:
        monkeypatch.setenv("FAR_NO_PUSH", "1")
    service = open_far(qwex_project)
    run = service.submit(service.job(["sh", "-c", "echo out; echo err >&2"]))
    assert wait_end(service, run).status is RunStatus.SUCCEEDED
    paths = {s: service.store.log_path(run.id, s) for s in ("stdout", "stderr")}
    with LogReader(paths) as reader:
        chunks = reader.read(final=True)
    assert sorted(c.data for c in chunks) == [b"err\n", b"out\n"]
    assert {c.time for c in chunks} == {int(STAMP.timestamp() * 1e9)}


def test_an_observations_note_is_kept_in_the_record(qwex_project: Path) -> None:
    service = open_far(qwex_project)
    run = service.submit(service.job(["true"]))
    final = wait_end(service, run)
    assert final.backend_data.get("far-host") == "node-7"


def test_the_local_copy_is_never_doubled(tmp_path: Path) -> None:
    """Pieces that overlap what was copied add only what is new; a piece past the copy's end
    is refused (a gap); a write cut short (the process ended mid-write) is a true prefix of
    the far side's bytes, so the next copy goes on right after it, once."""
    log = tmp_path / "stdout.log"
    with record_lock(tmp_path), LogCopy(tmp_path, ["stdout"]) as copy:
        assert copy.append(LogBytes("stdout", 0, b"one\ntw"))
        assert copy.append(LogBytes("stdout", 4, b"two\n"))  # overlaps by 2 bytes
        assert not copy.append(LogBytes("stdout", 12, b"x\n"))  # a gap: refused
        with log.open("ab") as fh:
            fh.write(b"thr")  # a write cut short
        assert copy.append(LogBytes("stdout", 8, b"three\n"))
        assert copy.size("stdout") == 14
    assert log.read_text() == "one\ntwo\nthree\n"
