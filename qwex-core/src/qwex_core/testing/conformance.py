"""The runner conformance suite: what every backend, third-party ones too, must do.

Subclass `RunnerConformance`, set `backend` (and `overrides`, e.g. an image),
and implement `kill_supervisor`; give `failing_job` (a job your backend really
fails to start) and, when the run does not run on this machine, `still_running`
(what of a run is still alive, as your backend sees it). Jobs are built the way
`qwex run` builds them (`RunService.job`), so `overrides` reach every job. The
commands are POSIX `sh` one-liners, so any image with a shell (busybox included)
works.

Each case proves its behaviour against the backend's own mechanisms: every end
is checked by its status, and every end the suite causes (a cancel, a killed
agent, a start failure) by `still_running` too, after checking that it sees a
live run. `tests/core/test_conformance_rejects.py` runs the suite against runners
broken on purpose and shows that each case fails for one of them.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest

from qwex_core.errors import BackendError, QwexError, RunNotFound, SpecError
from qwex_core.jobs import overrides
from qwex_core.models import JobSpec, Run, RunStatus
from qwex_core.plugin import hookimpl
from qwex_core.service import RunService, open_service
from qwex_core.store import RunStore
from qwex_core.testing.processes import processes_of_run


def not_applicable(reason: str) -> NoReturn:
    """Say, from a hook of a backend's suite (`failing_job`), that the case asking cannot
    apply to this backend, and why: the case is reported skipped with that reason."""
    pytest.skip(f"not applicable to this backend: {reason}")


def service_for(project_dir: Path, **flags: Any) -> RunService:
    """A service on `project_dir` with the installed plugins; `flags` override the
    configuration as `qwex run` flags do (`backend="docker"`, `image="busybox"`)."""
    project_dir.mkdir(parents=True, exist_ok=True)
    return open_service(project_dir, flags=overrides(flags))


class _Counter:
    """A plugin that counts `qwex_run_finished` calls per run."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def qwex_run_finished(self, run: Run) -> None:
        self.seen.append(run.id)


class RunnerConformance:
    """The behaviour every runner must show. Tests assert what a user would notice."""

    backend: ClassVar[str] = "local"
    overrides: ClassVar[dict[str, Any]] = {}
    """Configuration overrides every job of the suite gets, as flags: `{"image": "busybox"}`."""
    timeout: ClassVar[float] = 60.0
    """Seconds a short command may take to finish on this backend."""

    @pytest.fixture
    def service(self, qwex_project: Path) -> RunService:
        return service_for(qwex_project, backend=self.backend, **self.overrides)

    # -- what a backend's test class provides ------------------------------------

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        """Kill the running run's agent as a crash would (SIGKILL, a lost node), from outside."""
        pytest.fail(
            f"{type(self).__name__} must implement kill_supervisor(service, run): kill the "
            "run's agent from outside, so the suite can check the run is recorded `lost`"
        )

    def workdir_seen(self, service: RunService, host_dir: Path) -> str:
        """The working directory the command sees when started in `host_dir`, a folder of
        the project (a container backend maps it into the container)."""
        return str(host_dir)

    def failing_job(self, service: RunService) -> JobSpec | None:
        """A job this backend really fails to start: its `start` raises `BackendError` (an
        image that does not exist, an agent the kernel refuses to execute, a Job the cluster
        refuses). Call `not_applicable("why")` when every job `validate` accepts starts.

        Deprecated: None (the default) makes the suite replace `start` by one that raises,
        which proves nothing of the backend; the case then warns (`DeprecationWarning`), and
        a later release will fail it."""
        return None

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """What of `run` still runs where this backend runs it (processes, a container, a
        pod), each named for a failure message; [] when nothing does. The suite checks it
        sees a running run, and waits for it to be empty after every end it causes.

        The default looks at this machine's processes (`processes_of_run`: the run's
        `QWEX_RUN_ID`, its folder on the agent's command line, the agent's and the
        command's process groups). Override it when the run runs elsewhere: ask your daemon,
        cluster or server, by the run's label or id."""
        return processes_of_run(run, service.store.run_dir(run.id))

    def rejected_job(self, service: RunService) -> JobSpec:
        """A job the backend's own `validate` rejects (pydantic accepts it)."""
        return service.job(["true"], workdir="/nonexistent/qwex-conformance")

    # -- helpers -----------------------------------------------------------------

    def job(self, service: RunService, command: list[str], **fields: Any) -> JobSpec:
        return service.job(command, **fields)

    def wait_for(self, service: RunService, run: Run, statuses: set[RunStatus]) -> Run:
        """The run once its status is one of `statuses`; fails at once if it ends otherwise."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            run = service.get(run.id)
            if run.status in statuses:
                return run
            if run.is_final:
                pytest.fail(
                    f"run {run.id} ended {run.status.value} ({run.reason}), expected one of "
                    f"{sorted(s.value for s in statuses)}"
                )
            time.sleep(0.05)
        pytest.fail(
            f"run {run.id} stayed {run.status.value}, expected one of "
            f"{sorted(s.value for s in statuses)}"
        )

    def left_running(self, service: RunService, run: Run) -> list[str]:
        """`still_running` on the run's current record."""
        return self.still_running(service, service.store.load(run.id))

    def assert_seen_running(self, service: RunService, run: Run) -> None:
        """`still_running` sees the running run: an empty answer later then means something."""
        assert self.left_running(service, run), (
            f"still_running() sees nothing of run {run.id}, which is running: it cannot tell "
            "that a run is gone"
        )

    def assert_nothing_left(self, service: RunService, run: Run) -> None:
        """Nothing of the run still runs: waits (up to `timeout`) for the agent to exit."""
        deadline = time.monotonic() + self.timeout
        while left := self.left_running(service, run):
            if time.monotonic() >= deadline:
                final = service.store.load(run.id)
                pytest.fail(
                    f"run {run.id} is {final.status.value} ({final.reason}), but what it "
                    f"started still runs after {self.timeout}s: {left}"
                )
            time.sleep(0.1)

    def finish(self, service: RunService, command: list[str], **fields: Any) -> Run:
        run = service.submit(self.job(service, command, **fields))
        final = service.wait(run, timeout=self.timeout)
        assert final.is_final, f"run {run.id} did not finish within {self.timeout}s: {final.status}"
        return final

    def stdout(self, service: RunService, run: Run) -> str:
        return service.store.log_path(run.id, "stdout").read_text()

    def start_sleeper(self, service: RunService, **fields: Any) -> Run:
        """A running run that has printed `started` and sleeps."""
        run = service.submit(self.job(service, ["sh", "-c", "echo started; sleep 300"], **fields))
        run = self.wait_for(service, run, {RunStatus.RUNNING})
        deadline = time.monotonic() + self.timeout
        while "started" not in self.stdout(service, run):
            assert time.monotonic() < deadline, "the command never printed"
            time.sleep(0.05)
            # A look, as `qwex logs` takes: an observed backend's log is copied when someone
            # looks, and the look that saw it running may have come before the print.
            run = service.refresh(run)
        return run

    # -- tests -------------------------------------------------------------------

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
        assert (run.status, run.exit_code, run.reason) == (RunStatus.FAILED, 3, "exit code 3")

    def test_killed_by_signal_is_128_plus_n(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "kill -9 $$"])
        assert (run.status, run.exit_code, run.signal) == (RunStatus.FAILED, 137, "SIGKILL")

    def test_command_not_found(self, service: RunService) -> None:
        run = self.finish(service, ["qwex-no-such-command-xyz"])
        assert run.status is RunStatus.FAILED
        assert run.exit_code == 127
        assert "qwex-no-such-command-xyz" in (run.reason or "")

    def test_logs_keep_each_stream(self, service: RunService) -> None:
        run = self.finish(service, ["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
        assert run.status is RunStatus.SUCCEEDED
        assert self.stdout(service, run) == "to-out\nmore-out\n"
        assert service.store.log_path(run.id, "stderr").read_text() == "to-err\n"

    def test_shell_string_runs_through_sh(self, service: RunService) -> None:
        run = self.finish(service, ["echo one && echo two"])
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert self.stdout(service, run) == "one\ntwo\n"

    def test_env_reaches_the_command(self, service: RunService) -> None:
        run = self.finish(
            service, ["sh", "-c", 'echo "$QWEX_CONFORMANCE"'], env={"QWEX_CONFORMANCE": "hi there"}
        )
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert self.stdout(service, run) == "hi there\n"

    def test_secret_env_reaches_the_command_and_no_file(self, service: RunService) -> None:
        """A runner that sets `accepts_secret_env` gives the command `spec.secret_env` and
        writes its value nowhere in the run store; one that does not is refused the job."""
        import codecs
        import secrets

        value = "conformance-secret-" + secrets.token_hex(8)
        spec = self.job(service, ["sh", "-c", 'echo "$QWEX_SECRET" | tr a-z n-za-m'])
        spec.secret_env = {"QWEX_SECRET": value}
        if not service.runner(spec.backend).accepts_secret_env:
            with pytest.raises(SpecError, match="accepts_secret_env"):
                service.submit(spec)
            return
        final = service.wait(service.submit(spec), timeout=self.timeout)
        assert (final.status, final.exit_code) == (RunStatus.SUCCEEDED, 0), final.reason
        assert self.stdout(service, final) == codecs.encode(value, "rot13") + "\n"
        for path in service.store.root.rglob("*"):
            assert not path.is_file() or value.encode() not in path.read_bytes(), path

    def test_working_directory(self, service: RunService) -> None:
        project = service.store.project_dir
        (project / "sub").mkdir()
        run = self.finish(service, ["pwd"])
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert self.stdout(service, run) == self.workdir_seen(service, project) + "\n"
        run = self.finish(service, ["pwd"], cwd=project / "sub")
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert self.stdout(service, run) == self.workdir_seen(service, project / "sub") + "\n"

    def test_cancel_stops_the_command(self, service: RunService) -> None:
        """The agent stops the command within the grace period and records the cancel
        itself (a run killed by the host after the grace period has another reason); then
        nothing of the run runs any more."""
        run = self.start_sleeper(service, grace_period=5.0)
        self.assert_seen_running(service, run)
        service.cancel(run)
        final = service.wait(run, timeout=self.timeout)
        assert (final.status, final.reason) == (RunStatus.CANCELLED, "cancelled by user")
        self.assert_nothing_left(service, final)

    def test_cancelling_a_pending_run(self, service: RunService) -> None:
        """A run whose starter stopped before starting anything ends `cancelled` at once."""
        run = service.store.create(self.job(service, ["sh", "-c", "exit 0"]))
        service.cancel(run, reason="not needed")
        final = service.get(run.id)
        assert (final.status, final.reason) == (RunStatus.CANCELLED, "not needed")
        assert self.left_running(service, final) == []

    def test_a_vanished_supervisor_is_recorded_lost(self, service: RunService) -> None:
        """A killed agent is recorded `lost`, and what it started is stopped with it."""
        run = self.start_sleeper(service)
        self.assert_seen_running(service, run)
        self.kill_supervisor(service, run)
        final = self.wait_for(service, run, {RunStatus.LOST})
        assert final.reason and final.finished_at is not None
        assert service.get(run.id).status is RunStatus.LOST  # and it stays so
        self.assert_nothing_left(service, final)

    def test_plugins_are_told_exactly_once(self, service: RunService) -> None:
        counter = _Counter()
        service.host.register("conformance-counter", counter)
        run = self.finish(service, ["sh", "-c", "exit 0"])
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        service.get(run.id)
        list(service.list())
        other = open_service(service.store.project_dir, host=service.host)  # another process
        other.get(run.id)
        assert counter.seen == [run.id]

    def test_a_start_failure_is_recorded_failed(
        self, service: RunService, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A job the backend cannot start: `submit` says so and the run is `failed` with
        the backend's message, with nothing of it left running."""
        job = self.failing_job(service)
        if job is None:
            warnings.warn(
                f"{type(self).__name__}.failing_job() returns None: the start failure case "
                "replaces start() and proves nothing of the backend; return a job your backend "
                "really fails to start, or call not_applicable(why) (a later release fails "
                "this case)",
                DeprecationWarning,
                stacklevel=1,
            )
            job = self.job(service, ["true"])

            def refuse(run: Run) -> None:
                raise BackendError("no room for this run")

            monkeypatch.setattr(service.runner(self.backend), "start", refuse)
        with pytest.raises(QwexError, match="failed to start") as failure:
            service.submit(job)
        (run_id,) = service.store.ids()
        run = service.get(run_id)
        assert run.status is RunStatus.FAILED
        assert run.reason and run.reason in str(failure.value)
        self.assert_nothing_left(service, run)

    def test_two_followers_lose_no_update_and_copy_each_byte_once(
        self, service: RunService
    ) -> None:
        """Two qwex processes bring one run up to date at once (two terminals on `logs -f`,
        a `wait` beside them): each status is entered once, each log line is there once."""
        lines = [f"line {i}" for i in range(1, 41)]
        script = "for i in $(seq 1 40); do echo line $i; sleep 0.02; done"
        run = service.submit(self.job(service, ["sh", "-c", script]))
        others = [
            RunService(service.host, service.config, RunStore(service.store.project_dir))
            for _ in range(2)
        ]
        errors: list[BaseException] = []

        def follow(follower: RunService) -> None:
            deadline = time.monotonic() + self.timeout
            try:
                while not follower.observe(run.id).is_final:
                    assert time.monotonic() < deadline, f"run {run.id} did not finish"
                    follower.wait_for_change(follower.store.load(run.id), 0.01)
            except BaseException as exc:  # reported below, in the test's own thread
                errors.append(exc)

        threads = [threading.Thread(target=follow, args=(f,)) for f in others]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors
        final = service.get(run.id)
        assert (final.status, final.exit_code) == (RunStatus.SUCCEEDED, 0), final.reason
        assert self.stdout(service, final).splitlines() == lines
        entered = [t.status for t in final.history]
        assert len(entered) == len(set(entered)), f"a status entered twice: {entered}"

    def test_list_shows_runs_newest_first(self, service: RunService) -> None:
        first = self.finish(service, ["sh", "-c", "exit 0"])
        second = self.finish(service, ["sh", "-c", "exit 1"])
        listed = [r.id for r in service.list(backends={self.backend})]
        assert listed.index(second.id) < listed.index(first.id)
        failed = [r.id for r in service.list(statuses={RunStatus.FAILED})]
        assert second.id in failed and first.id not in failed

    def test_unknown_run_id_is_a_clear_error(self, service: RunService) -> None:
        """A run is found again by its short id from another qwex process (a runner that
        keeps nothing from `start`), which brings it to its end; an unknown id is a clear
        error there."""
        from qwex_core.store import short_id

        run = service.submit(self.job(service, ["sh", "-c", "exit 4"]))
        other = open_service(service.store.project_dir, host=service.host)
        found = other.get(short_id(run.id))
        assert found.id == run.id
        final = other.wait(found, timeout=self.timeout)
        assert (final.status, final.exit_code) == (RunStatus.FAILED, 4), final.reason
        with pytest.raises(RunNotFound, match="no run matches"):
            other.get("ffffffff-no-such-run")

    def test_the_runner_rejects_a_job_it_cannot_run(self, service: RunService) -> None:
        with pytest.raises(SpecError):
            service.submit(self.rejected_job(service))
        assert service.store.ids() == []

    # -- several workers (`Runner.runs_workers`) ------------------------------------

    def _needs_workers(self, service: RunService) -> None:
        if not service.runner(self.backend).runs_workers:
            not_applicable(f"the {self.backend} backend does not run workers (runs_workers)")

    def test_workers_each_get_their_rank_and_a_log(self, service: RunService) -> None:
        self._needs_workers(service)
        script = 'echo "rank=$RANK node=$NODE_RANK world=$WORLD_SIZE addr=${MASTER_ADDR:+set}"'
        run = self.finish(service, ["sh", "-c", script], nodes=2)
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert sorted(self.stdout(service, run).splitlines()) == [
            "[0] rank=0 node=0 world=2 addr=set",
            "[1] rank=1 node=1 world=2 addr=set",
        ]
        from qwex_core.workers import worker_log

        own = worker_log(service.store.run_dir(run.id), 1).read_text()
        assert own == "rank=1 node=1 world=2 addr=set\n"

    def test_a_failed_worker_fails_the_run_and_stops_the_others(self, service: RunService) -> None:
        self._needs_workers(service)
        script = 'if [ "$NODE_RANK" = 1 ]; then sleep 1; exit 3; fi; sleep 300'
        run = self.finish(service, ["sh", "-c", script], nodes=2, grace_period=2)
        assert (run.status, run.exit_code) == (RunStatus.FAILED, 3), run.reason
        assert (run.reason or "").startswith("worker 1 failed: exit code 3"), run.reason
        self.assert_nothing_left(service, run)

    def test_array_tasks_get_their_index_under_the_limit(self, service: RunService) -> None:
        self._needs_workers(service)
        run = self.finish(service, ["sh", "-c", 'echo "task $QWEX_ARRAY_INDEX"'], array="0-2%1")
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        assert sorted(self.stdout(service, run).splitlines()) == [
            "[0] task 0",
            "[1] task 1",
            "[2] task 2",
        ]


class ObservedConformance(RunnerConformance):
    """The suite for a backend built on `qwex_core.observed.ObservedRunner`: every case of
    `RunnerConformance`, and what only a far side can do (wait in its queue, stop
    answering). Implement `queued_job` and `far_side_down` besides the common hooks."""

    def queued_job(self, service: RunService) -> JobSpec:
        """A job that waits in the backend's queue (the far side says `queued`) until it is
        cancelled; call `not_applicable("why")` for a backend without a queue."""
        raise NotImplementedError

    @contextlib.contextmanager
    def far_side_down(self, service: RunService, run: Run) -> Iterator[None]:
        """While inside, the backend cannot reach where `run` runs (its API server, its
        server), though the run goes on there."""
        raise NotImplementedError
        yield

    def test_cancelling_a_queued_run(self, service: RunService) -> None:
        """A run still waiting in the backend's queue ends `cancelled` with the cancel's
        reason, and leaves the queue (nothing of it ever runs)."""
        run = service.submit(self.queued_job(service))
        self.wait_for(service, run, {RunStatus.QUEUED})
        service.cancel(service.get(run.id), reason="changed my mind")
        final = self.wait_for(service, run, {RunStatus.CANCELLED})
        assert final.reason == "changed my mind"
        assert RunStatus.RUNNING not in [t.status for t in final.history]
        self.assert_nothing_left(service, final)

    def test_a_far_side_that_stops_answering_and_comes_back(self, service: RunService) -> None:
        """While the far side cannot be asked, the record stands (never `lost`, no error);
        once it answers again, the run's end and all of its output are there."""
        run = self.start_sleeper(service)
        service.cancel(run, reason="first half")  # a test double of "it ends while away"
        with self.far_side_down(service, run):
            self.assert_nothing_left(service, run)  # it ended over there
            for _ in range(3):
                seen = service.get(run.id)
                assert seen.status is RunStatus.RUNNING, (seen.status, seen.reason)
        final = self.wait_for(service, run, {RunStatus.CANCELLED})
        assert final.reason == "first half"
        assert self.stdout(service, final) == "started\n"
