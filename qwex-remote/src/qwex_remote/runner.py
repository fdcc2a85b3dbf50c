"""`RemoteRunner`: a run handed to a qwex server (`qwex run --backend remote`).

`start` checks the server's API version, uploads the project snapshot unless the
server has that sha256 already, and submits with `submission_id` = the run id, so
a retry after a dropped connection gives one job; the job's id and the server's
URL go into the run record. The server runs the job with its own runners.

It is an observed backend (`qwex_core.observed`): it tells core what the server shows
of the job (`observe`), serves the job's log pages (`read_log`: the output and the
job's write-order index, byte for byte) and its follow stream (`follow_log`, Server-Sent
Events, so a line the job prints reaches `qwex logs -f` at once). Core writes the local
record and copies the log, so `qwex logs` and `qwex status` work after the server forgot
the run or is gone.

The runner knows the server only through `protocol.JobAPIClient`; the client
comes from one factory (`open_client`), which builds the adapter over the
generated client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from qwex_core.agent.record import FINAL_STATUSES, request_cancel
from qwex_core.errors import BackendError, SpecError
from qwex_core.lifecycle import CancelRequest, Seen
from qwex_core.observed import LogBytes, Observation, ObservedRunner
from qwex_core.store import short_id

from qwex_remote.client_settings import RemoteSettings
from qwex_remote.protocol import (
    API_VERSION,
    APIError,
    Degraded,
    JobEnd,
    JobState,
    LogPiece,
    ServerHealth,
    ServerShutdown,
    Submission,
    Unreachable,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.snapshot import Snapshot
    from qwex_core.store import RunStore

    from qwex_remote.protocol import JobAPIClient

SUBMIT_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Seconds before each retry of a submit whose connection failed (same submission id)."""
SUBMIT_TIMEOUT = 120.0
"""Seconds a run with no job id may stay pending: its starter stopped before submitting."""
LOG_PAGE = 1 << 20


def _say(message: str) -> None:
    """A qwex message on stderr, beside the job's output (nothing if stderr is closed)."""
    with contextlib.suppress(OSError, ValueError):
        print(f"qwex: {message}", file=sys.stderr, flush=True)


LISTING_PAGE = 500
"""Live jobs one `prefetch` asks for (the API's largest page)."""
LISTING_FRESH = 5.0
"""Seconds a `prefetch` stands for the probes that follow it."""


def open_client(settings: RemoteSettings, base_url: str) -> JobAPIClient:
    """The API client for `base_url`, with the configured token and timeout: the one place
    the runner meets the adapter (imported here: httpx only when a remote run needs it)."""
    from qwex_remote.adapter import GeneratedClientAdapter

    return GeneratedClientAdapter(
        base_url, settings.secret(), timeout=settings.timeout, trace=settings.trace
    )


class RemoteRunner(ObservedRunner):
    """Submits each run to the qwex server at `[tool.qwex.remote] base_url`."""

    uses_container = True
    """The server's backend may run containers: `--image` is sent, the server's policy decides."""
    streams = ("index", "stdout", "stderr")
    """The job's write-order index first: a reader waits for the bytes an entry names."""
    start_timeout = SUBMIT_TIMEOUT
    """A job waiting in the server's queue is `queued`, never unstarted; this bounds only a
    run the server has not accepted yet."""
    probe_every = 0.5
    client_factory: ClassVar[Callable[[RemoteSettings, str], JobAPIClient]] = staticmethod(
        open_client
    )

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self.remote = self.settings("remote", RemoteSettings)
        self._clients: dict[str, JobAPIClient] = {}
        self._ends: dict[str, JobEnd] = {}
        """Ends the follow stream told, for a look whose server database trails it."""
        self._snapshot: Snapshot | None = None
        """Made by `validate` (a too large tree fails before a record exists), sent by `start`."""
        self._health: tuple[threading.Thread, list[ServerHealth | Exception]] | None = None
        self._lock = threading.Lock()
        self._down: dict[str, float] = {}
        """Servers that failed to answer while someone followed, and since when."""
        self._listed: tuple[float, str, dict[str, JobState]] | None = None
        """The live jobs of the last `prefetch`: when, from which server, by job id."""

    def client(self, base_url: str) -> JobAPIClient:
        with self._lock:
            if base_url not in self._clients:
                self._clients[base_url] = type(self).client_factory(self.remote, base_url)
            return self._clients[base_url]

    # -- starting ----------------------------------------------------------------

    def validate(self, spec: JobSpec) -> None:
        if not self.remote.base_url:
            raise SpecError(self._where_to_set("base_url", "http://127.0.0.1:8765"))
        if self.remote.api_version != API_VERSION:
            raise SpecError(
                f"remote.api_version is {self.remote.api_version!r} "
                f"({self.config.source_of(('remote', 'api_version'))}), but this qwex-remote "
                f"speaks API version {API_VERSION} only; remove the key or upgrade qwex-remote"
            )
        self._workdir(spec)
        self._ask_health(self.remote.base_url)  # meanwhile: the client's import, a round trip
        self._snapshot = self._make_snapshot()

    def describe(self, run: Run) -> str:
        """The job `start` would submit, for `qwex run --dry-run`: the server and the body
        of `POST /jobs`, as JSON. The project's snapshot is made to name it by its sha256;
        nothing is uploaded or submitted. (The local agent's command line it showed before
        runs nowhere: the server starts the job on a backend of its own.)"""
        import json

        from qwex_remote.adapter import submission_data

        snapshot = self._snapshot or self._make_snapshot()
        body = submission_data(self._submission(run, snapshot.sha256))
        return json.dumps({"server": str(self.remote.base_url), "body": body}, indent=2)

    def _workdir(self, spec: JobSpec) -> str | None:
        """Where the command starts, relative to the project (so to its snapshot on the
        server); None for the project itself. Outside the project, nothing of it is there."""
        if not spec.workdir:
            return None
        project = self.store.project_dir.resolve()
        host = (project / spec.workdir).resolve()
        if not host.is_relative_to(project):
            raise SpecError(
                f"workdir {spec.workdir} is outside the project {project}; a remote job runs "
                "in the project's snapshot on the server: run qwex from inside the project"
            )
        relative = host.relative_to(project).as_posix()
        return None if relative == "." else relative

    def _where_to_set(self, key: str, example: str) -> str:
        files = [p for p in self.config.files if p.name != "config.toml"]
        project = files[-1] if files else self.store.project_dir / "qwex.toml"
        table = "[tool.qwex.remote]" if project.name == "pyproject.toml" else "[remote]"
        return (
            f"the remote backend needs remote.{key}: set {key} = {example!r} under {table} in "
            f"{project} (or in your user config, or QWEX_REMOTE_{key.upper()})"
        )

    def _make_snapshot(self) -> Snapshot:
        from qwex_core.snapshot import make_snapshot

        return make_snapshot(self.store.project_dir, limit=self.remote.snapshot_limit)

    def start(self, run: Run) -> None:
        base_url = str(self.remote.base_url)
        client = self.client(base_url)
        snapshot, self._snapshot = self._snapshot or self._make_snapshot(), None
        try:
            self._check_version(client, base_url)
            if not client.has_snapshot(snapshot.sha256):
                self._upload(client, snapshot)
        except Unreachable as exc:
            source = self.config.source_of(("remote", "base_url"))
            raise BackendError(f"{exc} (remote.base_url is set in {source})") from None
        except APIError as exc:
            raise self._refused(exc, base_url) from None
        run.backend_data = {"base_url": base_url, "submission_id": run.id}
        self.store.save(run)  # before the job exists: another process knows where to look
        state = self._submit(client, self._submission(run, snapshot.sha256), base_url)
        run.backend_data["job_id"] = state.id
        run.backend_data["server_backend"] = state.backend
        self.store.save(run)

    def _refused(self, exc: APIError, base_url: str) -> BackendError:
        """An error answer as one clear line; a refused token says where the token comes from."""
        if exc.status == 401:
            return BackendError(
                f"the server at {base_url} refused: {exc}; give this client a token from "
                "`qwex serve token add NAME` (run by the server's administrator) in "
                "QWEX_REMOTE_TOKEN, or remote.token_file / remote.token"
            )
        return BackendError(f"the server at {base_url} refused the job: {exc}")

    def _ask_health(self, base_url: str) -> None:
        """Ask the server's health in a thread: importing the client (httpx) and the round
        trip overlap making the snapshot; `start` takes the answer."""
        answer: list[ServerHealth | Exception] = []

        def ask() -> None:
            try:
                answer.append(self.client(base_url).health())
            except Exception as exc:  # raised in `start`, in the caller's thread
                answer.append(exc)

        thread = threading.Thread(target=ask, daemon=True, name="qwex-remote-health")
        thread.start()
        self._health = (thread, answer)

    def _check_version(self, client: JobAPIClient, base_url: str) -> None:
        asked, self._health = self._health, None
        try:
            if asked is not None:
                asked[0].join()
            if asked is not None and asked[1]:
                got = asked[1][0]
                if isinstance(got, Exception):
                    raise got
                health = got
            else:
                health = client.health()
        except APIError as exc:
            if exc.status != 404:
                raise
            raise BackendError(
                f"the server at {base_url} has no API version {API_VERSION} (404 for its "
                "health check): it speaks another version, or it is not a qwex server; "
                "upgrade qwex-remote here or on the server so that both speak the same"
            ) from None
        if health.api_version != API_VERSION:
            theirs = int(health.api_version) if health.api_version.isdigit() else 0
            newer = "the server" if theirs < int(API_VERSION) else "qwex-remote here"
            raise BackendError(
                f"API version mismatch: this client speaks {API_VERSION}, the server at "
                f"{base_url} (qwex-remote {health.server_version}) speaks "
                f"{health.api_version}; upgrade {newer} (pip install -U qwex-remote)"
            )

    def _upload(self, client: JobAPIClient, snapshot: Snapshot) -> None:
        fd, path = tempfile.mkstemp(prefix="qwex-snapshot-", suffix=".tar.gz")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(snapshot.data)
            client.put_snapshot(snapshot.sha256, Path(path))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _submission(self, run: Run, snapshot: str) -> Submission:
        spec = run.spec
        return Submission(
            submission_id=run.id,
            command=list(spec.command),
            backend=self.remote.backend,
            profile=self.remote.profile,
            name=spec.name,
            image=spec.container.image,
            env=dict(spec.env),
            labels=dict(spec.labels),
            secrets=dict(self.remote.secrets),
            resources=spec.resources.model_dump(mode="json", exclude_none=True),
            mounts=[m.model_dump(mode="json") for m in spec.mounts],
            network=spec.container.network,
            grace_period=spec.grace_period,
            snapshot=snapshot,
            workdir=self._workdir(spec),
        )

    def _submit(self, client: JobAPIClient, submission: Submission, base_url: str) -> JobState:
        """Submit; a connection that failed is retried with the same submission id, which
        the server answers with the job the first attempt made, if it did."""
        for delay in (*SUBMIT_RETRIES, None):
            try:
                return client.submit(submission)
            except Unreachable as exc:
                if delay is None:
                    raise BackendError(
                        f"the server at {base_url} did not answer the submit "
                        f"({len(SUBMIT_RETRIES) + 1} tries): {exc}"
                    ) from None
                time.sleep(delay)
            except APIError as exc:
                raise self._refused(exc, base_url) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- looking at the run -------------------------------------------------------

    def _job(self, run: Run) -> tuple[str, str] | None:
        data = run.backend_data
        if not data.get("job_id") or not data.get("base_url"):
            return None
        return str(data["base_url"]), str(data["job_id"])

    def prefetch(self) -> None:
        """The server's live jobs in one page (`GET /jobs?status=...`), for the looks of a
        listing: a run among them needs no request of its own, nor a log read."""
        base_url = self.remote.base_url
        if not base_url:
            return
        try:
            page = self.client(base_url).list(
                statuses=["pending", "queued", "running"], limit=LISTING_PAGE
            )
        except (Unreachable, APIError):
            return  # each run is then asked on its own
        if page.next_cursor is None:  # all of them: only then is a missing one not live
            self._listed = (time.monotonic(), base_url, {j.id: j for j in page.items})

    def _from_listing(self, base_url: str, job_id: str) -> JobState | None:
        if self._listed is None:
            return None
        at, listed_url, jobs = self._listed
        if listed_url != base_url or time.monotonic() - at > LISTING_FRESH:
            return None
        return jobs.get(job_id)

    def observe(self, run: Run) -> Observation | None:
        where = self._job(run)
        if where is None:
            return self._unsubmitted(run)
        base_url, job_id = where
        what = f"its job {job_id} on {base_url}"
        listed = self._from_listing(base_url, job_id)
        if listed is not None:
            return self._seen(run, listed, what, listed=True)
        try:
            state = self.client(base_url).get(job_id)
        except Unreachable as exc:
            self.server_down(base_url, exc)
            return None
        except APIError as exc:
            if exc.status == 404:
                reason = (
                    f"the server at {base_url} no longer knows its job {job_id} (its database "
                    "was replaced, or the job removed); the output copied before is kept"
                )
                return Observation(Seen.EXITED, what, status="lost", reason=reason)
            raise BackendError(f"run {short_id(run.id)}: {self._refused(exc, base_url)}") from None
        self.server_up(base_url)
        return self._seen(run, state, what)

    def _unsubmitted(self, run: Run) -> Observation:
        """A run with no job id yet: its starter is submitting it, or stopped before the
        server accepted it (then it is `lost`, said with the submission id)."""
        age = (datetime.now(UTC) - run.created_at).total_seconds()
        if age < SUBMIT_TIMEOUT or CancelRequest.of(self.store.run_dir(run.id)):
            return Observation(Seen.NOTHING, "its job on the server")
        reason = (
            "the qwex process that started it stopped before the server accepted the "
            f"job (its submission id {run.id} names it, if the server got it)"
        )
        return Observation(Seen.EXITED, "its job on the server", status="lost", reason=reason)

    def _seen(self, run: Run, state: JobState, what: str, *, listed: bool = False) -> Observation:
        """What the server shows of the job, as core's observation. An end its follow
        stream told before the server's database has it stands for it."""
        end = self._ends.get(run.id)
        if state.status not in FINAL_STATUSES and end is not None:
            state = replace(
                state,
                status=end.status,
                reason=end.reason,
                exit_code=end.exit_code,
                signal=end.signal,
            )
        started, finished = _when(state.started_at), _when(state.finished_at)
        if state.status in FINAL_STATUSES:
            return Observation(
                Seen.EXITED,
                what,
                status=state.status,
                reason=state.reason or state.status,
                exit_code=state.exit_code,
                signal=state.signal,
                started_at=started or (finished if state.exit_code is not None else None),
                finished_at=finished,
            )
        if state.status == "running":
            return Observation(Seen.ALIVE, what, started_at=started, listed=listed)
        if state.status == "queued" and state.reason:
            # The server's backend queues it (Kueue, say): why, in that backend's words.
            queued = state.reason
        else:  # in the server's own queue
            queued = f"waiting in the queue of the server at {run.backend_data.get('base_url')}"
        return Observation(Seen.STARTING, what, queued=queued, listed=listed)

    def read_log(self, run: Run, stream: str, offset: int) -> bytes | list[LogBytes]:
        """The job's bytes of `stream` from `offset` on, one page (`GET .../logs`)."""
        where = self._job(run)
        if where is None:
            return b""
        try:
            piece = self.client(where[0]).logs(where[1], _stream(stream), offset, LOG_PAGE)
        except APIError as exc:
            if stream == "index" and exc.status == 422:
                return b""  # a server from before the index: the output alone
            raise BackendError(f"the server at {where[0]}: {exc}") from None
        except Unreachable as exc:
            raise BackendError(str(exc)) from None
        return [LogBytes(piece.stream, piece.offset, piece.data)]

    def follow_log(self, run: Run, offsets: Mapping[str, int]) -> Iterator[LogBytes | None] | None:
        """The job's follow stream (Server-Sent Events) on a connection of its own."""
        where = self._job(run)
        if where is None:
            return None
        return self._events(run, where[0], where[1], dict(offsets))

    def _events(
        self, run: Run, base_url: str, job_id: str, offsets: dict[str, int]
    ) -> Iterator[LogBytes | None]:
        client = type(self).client_factory(self.remote, base_url)
        try:
            for event in client.follow(job_id, offsets):
                if isinstance(event, LogPiece):
                    yield LogBytes(event.stream, event.offset, event.data)
                elif isinstance(event, JobEnd):
                    self._ends[run.id] = event
                    yield None  # the end: core looks
                    return
                elif isinstance(event, ServerShutdown):
                    return
        except Unreachable as exc:  # also a 503 (`Degraded`): said once, followed again
            self.server_down(base_url, exc)
            raise BackendError(str(exc)) from None
        except APIError as exc:
            if exc.status == 404:
                return  # the server forgot the job: the next look says so
            raise RuntimeError(f"the server at {base_url}: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def server_down(self, base_url: str, exc: Unreachable) -> None:
        """Say once, while someone follows, that the server does not serve (it does not
        answer, or answers 503): following goes on and resumes when it is back."""
        with self._lock:
            if base_url in self._down or not self._pushers:
                return
            self._down[base_url] = time.monotonic()
        kind = "degraded" if isinstance(exc, Degraded) else "unreachable"
        _say(f"server {kind}: {exc}; still following")

    def server_up(self, base_url: str) -> None:
        """Say once that a server `server_down` told of answers again: its API, not only
        its log stream (which reads files, and flows while the database is down)."""
        if not self._down:  # every answer comes here: nothing to do but this look
            return
        with self._lock:
            since = self._down.pop(base_url, None)
        if since is not None:
            _say(f"the server at {base_url} answers again after {time.monotonic() - since:.0f} s")

    # -- acting on the run -----------------------------------------------------------

    def signal(self, run: Run, signum: int) -> None:
        """Ask the server to cancel the job (any signal: the server stops it with its grace
        period, then kills it). A job the server no longer knows, or an unreachable
        server, is not an error here."""
        where = self._job(run)
        if where is None:
            return
        with contextlib.suppress(Unreachable):
            try:
                self.client(where[0]).cancel(where[1])
            except APIError as exc:
                if exc.status != 404:
                    raise BackendError(
                        f"cannot cancel run {short_id(run.id)}: the server at {where[0]} "
                        f"refused: {exc}"
                    ) from None

    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        """The server is asked first, so a refused cancel (another user's run) leaves no
        cancel marker behind; then core's marker, and the record as the server has it."""
        if self._job(run) is None:
            super().cancel(run, reason=reason, interrupt=interrupt)
            return
        self.signal(run, signal.SIGTERM)
        request_cancel(self.store.run_dir(run.id), reason)
        self._probed.pop(run.id, None)
        self.refresh(run)

    def cleanup(self, run: Run) -> None:
        super().cleanup(run)
        self._ends.pop(run.id, None)


def _when(text: str | None) -> datetime | None:
    """A time the server sent (ISO 8601), as a datetime; None when absent or unreadable."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _stream(name: str) -> Literal["stdout", "stderr", "index"]:
    if name not in ("stdout", "stderr", "index"):
        raise BackendError(f"no log stream {name!r} on a qwex server")
    return name  # type: ignore[return-value]
