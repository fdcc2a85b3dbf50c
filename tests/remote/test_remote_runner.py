"""The remote runner against a real `qwex serve` on loopback whose default backend is local:
the conformance suite every backend passes, and what only a remote run does (the snapshot
sent once, a retried submit that makes one job, the run readable after the server is gone).
A remote job runs in its own unpacked snapshot on the server, so the working directory the
suite sees is a folder of the server's, not of the project (docs/server.md)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qwex_core.errors import QwexError
from qwex_core.models import Run, RunStatus
from qwex_core.service import RunService
from qwex_core.testing import ObservedConformance, processes_of_run, service_for
from qwex_remote.runner import RemoteRunner, open_client
from server_support import FINAL, Server, submit, team_server, wait_final, wait_status


def root_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def configure(project: Path, url: str, monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """The project submits to `url`, with `token` from the environment (as a user would)."""
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "{url}"\n')
    monkeypatch.setenv("QWEX_REMOTE_TOKEN", token)


def server_run_dir(server: Server, job_id: str) -> Path:
    return next((server.data_dir / "jobs" / job_id / ".qwex" / "runs").iterdir())


SLOTS = 4
"""Jobs the test server runs at once (`[server] concurrency`, its default)."""


class TestRemoteRunner(ObservedConformance):
    backend = "remote"

    @pytest.fixture(autouse=True)
    def blockers(self, server: Server) -> Iterator[list[str]]:
        """Jobs taking the server's slots for `queued_job`, cancelled after the test."""
        self._blockers: list[str] = []
        yield self._blockers
        with server.client("alice") as client:
            for job_id in self._blockers:
                client.post(f"/jobs/{job_id}/cancel")
            for job_id in self._blockers:
                wait_final(client, job_id)

    def queued_job(self, service: RunService) -> Any:
        """The server's slots are taken by sleepers first: the job waits in its queue."""
        with self.server.client("alice") as client:
            for _ in range(SLOTS):
                job = submit(client, str(uuid.uuid4()), ["sleep", "300"])
                self._blockers.append(job["id"])
            for job_id in self._blockers:
                wait_status(client, job_id, "running")
        return service.job(["sh", "-c", "echo never"])

    @contextlib.contextmanager
    def far_side_down(self, service: RunService, run: Run) -> Iterator[None]:
        """The server stops (once the job ended there) and starts again on the same port."""
        job_id = str(service.store.load(run.id).backend_data["job_id"])
        with self.server.client("alice") as client:
            assert wait_final(client, job_id)["status"] in FINAL
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()

    @pytest.fixture
    def service(
        self, qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
    ) -> RunService:
        configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
        self.server = server
        return service_for(qwex_project, backend="remote")

    def kill_supervisor(self, service: RunService, run: Run) -> None:
        """The job's agent and command on the server killed at once, as a crash would."""
        job_id = service.store.load(run.id).backend_data["job_id"]
        run_dir = server_run_dir(self.server, job_id)
        os.killpg(int((run_dir / "agent.pid").read_text().split()[0]), signal.SIGKILL)
        os.killpg(json.loads((run_dir / "run.json").read_text())["pid"], signal.SIGKILL)

    def failing_job(self, service: RunService) -> Any:
        """An image the server's policy does not allow: the server refuses the submit (403),
        so the remote backend's `start` fails. (A job the server accepts and its own backend
        then fails to start ends `failed` later, not in `start`: see
        `test_a_job_the_server_fails_to_start_is_recorded_failed`.)"""
        return service.job(["true"], container={"image": "not-allowed/anything"})

    def still_running(self, service: RunService, run: Run) -> list[str]:
        """The processes of the run the server started for the job (its local backend,
        on this machine), found from that run's own record and folder."""
        job_id = run.backend_data.get("job_id")
        runs = self.server.data_dir / "jobs" / str(job_id) / ".qwex" / "runs"
        if not job_id or not runs.is_dir():
            return []
        found = []
        for run_dir in runs.iterdir():
            record = Run.model_validate_json((run_dir / "run.json").read_text())
            found += processes_of_run(record, run_dir)
        return found

    def test_working_directory(self, service: RunService) -> None:
        """The job starts in its own folder on the server, holding the project's snapshot,
        at the same place in it as qwex was run in the project."""
        project = service.store.project_dir
        (project / "sub").mkdir()
        (project / "sub" / "here.txt").write_text("x")
        run = self.finish(service, ["sh", "-c", "pwd; ls sub"])
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        job_dir = self.server.data_dir / "jobs" / run.backend_data["job_id"]
        assert self.stdout(service, run) == f"{job_dir}\nhere.txt\n"
        run = self.finish(service, ["sh", "-c", "pwd; ls"], cwd=project / "sub")
        assert (run.status, run.exit_code) == (RunStatus.SUCCEEDED, 0), run.reason
        job_dir = self.server.data_dir / "jobs" / run.backend_data["job_id"]
        assert self.stdout(service, run) == f"{job_dir / 'sub'}\nhere.txt\n"


def test_a_start_failure_names_the_servers_rule(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
    service = service_for(qwex_project, backend="remote")
    with pytest.raises(QwexError, match=r"refused by the server policy \(server\.mounts\)"):
        service.submit(service.job(["true"], mounts=[{"source": "/", "target": "/host"}]))


class Counting:
    """The real client, counting the calls the runner makes."""

    def __init__(self, inner: Any, calls: list[str]) -> None:
        self.inner = inner
        self.calls = calls

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attr(*args, **kwargs)

            return counted
        return attr


def test_the_snapshot_is_uploaded_only_when_the_server_lacks_it(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
    (qwex_project / "data.txt").write_text("from the laptop\n")
    calls: list[str] = []
    monkeypatch.setattr(
        RemoteRunner,
        "client_factory",
        staticmethod(lambda settings, url: Counting(open_client(settings, url), calls)),
    )
    service = service_for(qwex_project, backend="remote")
    outputs = []
    for _ in range(2):
        run = service.wait(service.submit(service.job(["cat", "data.txt"])), timeout=60)
        assert run.status is RunStatus.SUCCEEDED
        outputs.append(service.store.log_path(run.id, "stdout").read_text())
    assert outputs == ["from the laptop\n"] * 2
    assert calls.count("has_snapshot") == 2 and calls.count("put_snapshot") == 1


class DroppingProxy:
    """A TCP proxy on loopback that forwards everything, except that the connection which
    carries the first `POST .../jobs` is closed once the server has answered it: the job
    exists, but the client never hears so (a dropped connection)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dropped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            drop = threading.Event()
            threading.Thread(target=self._up, args=(client, upstream, drop), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, drop), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, drop: threading.Event) -> None:
        with contextlib_suppress():
            while data := client.recv(65536):
                if not self.dropped and b"POST /api/v1/jobs " in data:
                    self.dropped = True
                    drop.set()
                upstream.sendall(data)

    def _down(self, upstream: socket.socket, client: socket.socket, drop: threading.Event) -> None:
        with contextlib_suppress():
            while data := upstream.recv(65536):
                if drop.is_set():
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    upstream.close()
                    return
                client.sendall(data)

    def close(self) -> None:
        self.listener.close()


def contextlib_suppress() -> Any:
    import contextlib

    return contextlib.suppress(OSError)


def test_a_submit_retried_after_a_dropped_connection_makes_one_job(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = DroppingProxy(server.port)
    try:
        configure(qwex_project, f"http://127.0.0.1:{proxy.port}", monkeypatch, server.tokens["bob"])
        service = service_for(qwex_project, backend="remote")
        run = service.wait(service.submit(service.job(["echo", "once"])), timeout=60)
    finally:
        proxy.close()
    assert proxy.dropped
    assert run.status is RunStatus.SUCCEEDED
    assert service.store.log_path(run.id, "stdout").read_text() == "once\n"
    with server.client("bob") as bob:
        jobs = bob.get("/jobs", params={"submitter": "bob"}).json()["items"]
    assert [j["submission_id"] for j in jobs].count(run.id) == 1
    assert jobs[0]["id"] == run.backend_data["job_id"]


def test_a_job_the_server_does_not_know_is_never_an_error_to_cancel(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
    service = service_for(qwex_project, backend="remote")
    run = service.store.create(service.job(["true"]))
    run.backend_data = {"base_url": root_url(server), "job_id": "no-such-job"}
    service.store.save(run)
    service.runner("remote").signal(run, signal.SIGKILL)  # nothing to stop, no error
    service.cancel(run, reason="not needed")
    final = service.get(run.id)
    assert (final.status, final.reason) == (RunStatus.CANCELLED, "not needed")


def test_a_run_never_submitted_ends_lost_saying_why(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its starter stopped before the server took the job: lost after a while, not pending
    for the days a job may wait in the server's queue."""
    configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
    service = service_for(qwex_project, backend="remote")
    fresh = service.store.create(service.job(["true"]))
    assert service.get(fresh.id).status is RunStatus.PENDING
    old = service.store.create(service.job(["true"]))
    record = service.store.read(old.id)
    record["created_at"] = record["history"][0]["at"] = "2020-01-01T00:00:00+00:00"
    service.store.save(Run.model_validate(record))
    final = service.get(old.id)
    assert final.status is RunStatus.LOST
    assert "stopped before the server accepted the job" in (final.reason or "")


def test_a_job_the_server_fails_to_start_is_recorded_failed(
    qwex_project: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server accepts the job, then its own backend cannot start it (an environment
    too big for the kernel to execute the agent with): the run here ends `failed` with the
    server's reason, and the command never ran."""
    configure(qwex_project, root_url(server), monkeypatch, server.tokens["alice"])
    service = service_for(qwex_project, backend="remote")
    too_big = {"QWEX_TOO_BIG": "x" * 131072}  # the longest value the API takes; with its
    # name, longer than the kernel's limit on one string of a new program's environment
    run = service.submit(service.job(["sh", "-c", "echo ran"], env=too_big))
    final = service.wait(run, timeout=60)
    assert final.status is RunStatus.FAILED, final.reason
    assert "cannot start the agent" in (final.reason or ""), final.reason
    assert "ran" not in service.store.log_path(run.id, "stdout").read_text()


def test_a_cancelled_job_keeps_the_signal_that_ended_its_command(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reason is the cancel's own ("not needed"), with no "killed by" in it: the
    signal comes from the server's job record, not from the reason's words."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "qwex.toml").write_text("")
    configure(project, root_url(server), monkeypatch, server.tokens["alice"])
    service = service_for(project, backend="remote")
    run = service.submit(service.job(["sh", "-c", "echo up; sleep 300"]))
    deadline = time.monotonic() + 60
    while "up" not in service.store.log_path(run.id, "stdout").read_text(errors="replace"):
        assert time.monotonic() < deadline, "the job never printed"
        service.get(run.id)
        time.sleep(0.05)
    service.cancel(service.get(run.id), reason="not needed")
    final = service.wait(run, timeout=60)
    assert (final.status.value, final.reason) == ("cancelled", "not needed")
    assert (final.exit_code, final.signal) == (143, "SIGTERM")
