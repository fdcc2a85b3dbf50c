"""The runner conformance suite: what every backend, third-party ones too, must do.

Subclass `RunnerConformance`, set `backend`, provide a `service` fixture (a
`RunService` on a temporary project, e.g. from `service_for`) and override
`make_spec` to add what your backend needs (an image...). The commands used
are POSIX `sh` one-liners, so any image with a shell (busybox included) works.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from qwex_core.errors import QwexError, RunNotFound
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.service import RunService, open_service


def service_for(project_dir: Path, **flags: Any) -> RunService:
    """A service on `project_dir` with the installed plugins; `flags` set config keys
    as the command line would (`backend="docker"`, `image="busybox"`)."""
    project_dir.mkdir(parents=True, exist_ok=True)
    return open_service(project_dir, flags={(k,): (v, f"--{k}") for k, v in flags.items()})


class RunnerConformance:
    """The behaviour every runner must show. Tests assert what a user would notice."""

    backend: ClassVar[str] = "local"
    timeout: ClassVar[float] = 60.0
    """Seconds a short command may take to finish on this backend."""

    def make_spec(self, command: list[str], **fields: Any) -> JobSpec:
        return JobSpec(command=command, backend=self.backend, **fields)

    def wait_for(self, service: RunService, run: Run, statuses: set[RunStatus]) -> Run:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            run = service.get(run.id)
            if run.status in statuses:
                return run
            time.sleep(0.05)
        pytest.fail(f"run {run.id} stayed {run.status.value}, expected one of {sorted(statuses)}")

    def finish(self, service: RunService, command: list[str], **fields: Any) -> Run:
        run = service.submit(self.make_spec(command, **fields))
        final = service.wait(run, timeout=self.timeout)
        assert final.is_final, f"run {run.id} did not finish within {self.timeout}s: {final.status}"
        return final

    # -- tests ---------------------------------------------------------------

    def test_success_records_every_transition(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "exit 0"])
        assert run.status is RunStatus.SUCCEEDED
        assert run.exit_code == 0
        seen = [t.status for t in run.history]
        assert seen[0] is RunStatus.PENDING and seen[-1] is RunStatus.SUCCEEDED
        assert RunStatus.RUNNING in seen
        times = [t.at for t in run.history]
        assert times == sorted(times)
        assert run.started_at is not None and run.finished_at is not None
        assert run.created_at <= run.started_at <= run.finished_at

    def test_exit_code_and_reason(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "exit 3"])
        assert run.status is RunStatus.FAILED
        assert run.exit_code == 3
        assert run.reason == "exit code 3"

    def test_killed_by_signal_is_128_plus_n(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "kill -9 $$"])
        assert run.status is RunStatus.FAILED
        assert run.exit_code == 137
        assert run.signal == "SIGKILL"

    def test_command_not_found(self, service: RunService) -> None:
        run = self.finish(service, ["qwex-no-such-command-xyz"])
        assert run.status is RunStatus.FAILED
        assert run.exit_code == 127
        assert "qwex-no-such-command-xyz" in (run.reason or "")

    def test_logs_keep_each_stream(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert run.status is RunStatus.SUCCEEDED
        assert service.store.log_path(run.id, "stdout").read_text() == "to-out\nmore-out\n"
        assert service.store.log_path(run.id, "stderr").read_text() == "to-err\n"

    def test_shell_string_runs_through_sh(self, service: RunService) -> None:
        run = self.finish(service, ["echo one && echo two"])
        assert service.store.log_path(run.id, "stdout").read_text() == "one\ntwo\n"

    def test_env_reaches_the_command(self, service: RunService) -> None:
        run = self.finish(
            service, ["sh", "-c", 'echo "$QWEX_CONFORMANCE"'], env={"QWEX_CONFORMANCE": "hi there"}
        )
        assert service.store.log_path(run.id, "stdout").read_text() == "hi there\n"

    def test_cancel_stops_the_command(self, service: RunService) -> None:
        spec = self.make_spec(["sh", "-c", "echo started; sleep 300"], grace_period=5.0)
        run = service.submit(spec)
        run = self.wait_for(service, run, {RunStatus.RUNNING})
        deadline = time.monotonic() + self.timeout
        while "started" not in service.store.log_path(run.id, "stdout").read_text():
            assert time.monotonic() < deadline, "the command never printed"
            time.sleep(0.05)
        begun = time.monotonic()
        service.cancel(run)
        final = service.wait(run, timeout=self.timeout)
        assert final.status is RunStatus.CANCELLED
        assert final.reason == "cancelled by user"
        assert time.monotonic() - begun < 5.0 + self.timeout / 2  # well before sleep 300 ends

    def test_list_shows_runs_newest_first(self, service: RunService) -> None:
        first = self.finish(service, ["sh", "-c", "exit 0"])
        second = self.finish(service, ["sh", "-c", "exit 1"])
        listed = [r.id for r in service.list(backends={self.backend})]
        assert listed.index(second.id) < listed.index(first.id)
        failed = [r.id for r in service.list(statuses={RunStatus.FAILED})]
        assert second.id in failed and first.id not in failed

    def test_unknown_run_id_is_a_clear_error(self, service: RunService) -> None:
        with pytest.raises(RunNotFound, match="no run matches"):
            service.get("ffffffff-no-such-run")

    def test_bad_spec_is_rejected_before_anything_starts(self, service: RunService) -> None:
        with pytest.raises((QwexError, ValueError)):
            service.submit(self.make_spec([""]))
        assert list(service.store.ids()) == []
