"""`JobAPIClient` over the generated client (`qwex_remote.client`): the only module that imports it.

Every error answer becomes `APIError` in one place, an httpx response hook, so the
generated operations only ever parse 2xx bodies; a server that does not answer
becomes `Unreachable`. The follow stream (Server-Sent Events) is read by hand over
the generated client's own httpx client. httpx and the generated modules are imported
on first use: importing this module costs the CLI next to nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from qwex_remote import __version__
from qwex_remote.protocol import (
    API_VERSION,
    APIError,
    Degraded,
    FollowEvent,
    JobEnd,
    JobList,
    JobState,
    LogPiece,
    ServerHealth,
    ServerShutdown,
    Submission,
    Unreachable,
)

if TYPE_CHECKING:
    import httpx

    from qwex_remote.client import AuthenticatedClient
    from qwex_remote.client.models.job_info import JobInfo
    from qwex_remote.client.types import Response

T = TypeVar("T")
API_PREFIX = f"/api/v{API_VERSION}"


class GeneratedClientAdapter:
    """The qwex server at `base_url` (`http://host:port`; a trailing `/api/v1` is accepted).

    `timeout` bounds each request; `stream_timeout` is how long a follow stream may stay
    silent (the server sends a keepalive every `server.sse_keepalive` seconds, 15 by
    default) before the server counts as gone; None waits forever."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        stream_timeout: float | None = 120.0,
        trace: bool = False,
    ) -> None:
        url = base_url.rstrip("/")
        self.base_url = url.removesuffix(API_PREFIX)
        self._token = token
        self._timeout = timeout
        self._stream_timeout = stream_timeout
        self._trace = trace
        self._client: AuthenticatedClient | None = None

    # -- the protocol -------------------------------------------------------------------

    def health(self) -> ServerHealth:
        from qwex_remote.client.api.server import health

        got = self._call(lambda: health.sync_detailed(client=self._api()))
        return ServerHealth(server_version=got.server_version, api_version=got.api_version)

    def submit(self, submission: Submission) -> JobState:
        from qwex_remote.client.api.jobs import submit_job
        from qwex_remote.client.models.job_submission import JobSubmission

        body = JobSubmission.from_dict(submission_data(submission))
        return _job(self._call(lambda: submit_job.sync_detailed(client=self._api(), body=body)))

    def get(self, job_id: str) -> JobState:
        from qwex_remote.client.api.jobs import get_job

        return _job(self._call(lambda: get_job.sync_detailed(job_id, client=self._api())))

    def list(
        self,
        *,
        statuses: list[str] | None = None,
        backend: str | None = None,
        submitter: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobList:
        from qwex_remote.client.api.jobs import list_jobs
        from qwex_remote.client.types import UNSET

        page = self._call(
            lambda: list_jobs.sync_detailed(
                client=self._api(),
                status=statuses or UNSET,
                backend=backend if backend is not None else UNSET,
                submitter=submitter if submitter is not None else UNSET,
                cursor=cursor if cursor is not None else UNSET,
                limit=limit,
            )
        )
        return JobList(items=[_job(j) for j in page.items], next_cursor=_opt(page.next_cursor))

    def cancel(self, job_id: str) -> JobState:
        from qwex_remote.client.api.jobs import cancel_job

        return _job(self._call(lambda: cancel_job.sync_detailed(job_id, client=self._api())))

    def has_snapshot(self, sha256: str) -> bool:
        from qwex_remote.client.api.snapshots import get_snapshot

        try:
            self._call(lambda: get_snapshot.sync_detailed(sha256, client=self._api()))
        except APIError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def put_snapshot(self, sha256: str, archive: Path) -> None:
        """Stream `archive` (httpx reads the open file in chunks, never all at once)."""
        from qwex_remote.client.api.snapshots import put_snapshot
        from qwex_remote.client.types import File

        with archive.open("rb") as fh:
            body = File(payload=fh, mime_type="application/gzip")
            self._call(lambda: put_snapshot.sync_detailed(sha256, client=self._api(), body=body))

    def logs(
        self, job_id: str, stream: Literal["stdout", "stderr", "index"], offset: int, limit: int
    ) -> LogPiece:
        from qwex_remote.client.api.logs import get_logs
        from qwex_remote.client.models.get_logs_stream import GetLogsStream

        chunk = self._call(
            lambda: get_logs.sync_detailed(
                job_id,
                client=self._api(),
                stream=GetLogsStream(stream),
                offset=offset,
                limit=limit,
            )
        )
        return LogPiece(
            stream=stream,
            offset=chunk.offset,
            next_offset=chunk.next_offset,
            data=_bytes(chunk.data_b64, chunk.data),
            final=chunk.final,
        )

    def follow(self, job_id: str, offsets: Mapping[str, int]) -> Iterator[FollowEvent]:
        """`log` events as `LogPiece`s, then `JobEnd` (or `ServerShutdown`); keepalive
        comments are skipped. A stream that breaks off raises `Unreachable`: follow
        again from the offsets of the last piece."""
        import httpx

        from qwex_remote.client.api.logs import follow_logs
        from qwex_remote.client.types import UNSET

        out, err = offsets.get("stdout", 0), offsets.get("stderr", 0)
        index = offsets.get("index")
        last_id = f"{out},{err}" if index is None else f"{out},{err},{index}"
        # The generated operation builds the request (path, parameters); only reading the
        # body as a stream is done here, which the generated operation cannot do.
        request = follow_logs._get_kwargs(
            job_id,
            stdout_offset=out,
            stderr_offset=err,
            index_offset=UNSET if index is None else index,
            last_event_id=last_id,
        )
        timeout = httpx.Timeout(self._timeout, read=self._stream_timeout)
        try:
            with self._api().get_httpx_client().stream(**request, timeout=timeout) as response:
                for kind, data in _sse(response.iter_lines()):
                    event = _follow_event(kind, data)
                    if event is None:
                        continue
                    yield event
                    if not isinstance(event, LogPiece):
                        return
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        raise Unreachable(
            f"the follow stream of job {job_id} from {self.base_url} ended before the job "
            "did; follow it again from the last offsets"
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.get_httpx_client().close()
            self._client = None

    def __enter__(self) -> GeneratedClientAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------

    def _api(self) -> AuthenticatedClient:
        """The generated client over an httpx client made here: the bearer header only when
        there is a token, and the error hook."""
        if self._client is None:
            import httpx

            from qwex_remote.client import AuthenticatedClient

            headers = {"User-Agent": f"qwex-remote/{__version__}"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            http = httpx.Client(
                base_url=self.base_url,
                headers=headers,
                verify=_needs_tls(self.base_url),
                timeout=httpx.Timeout(self._timeout),
                event_hooks={
                    "request": [_trace] if self._trace else [],
                    "response": [self._raise_for_error],
                },
            )
            api = AuthenticatedClient(base_url=self.base_url, token=self._token or "")
            self._client = api.set_httpx_client(http)
        return self._client

    def _raise_for_error(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        code, message = _error_model(response.content)
        if response.status_code == 503 and code == "unavailable":
            raise Degraded(f"the qwex server at {self.base_url} answered 503: {message}")
        if code is None:
            message = (
                f"{response.request.method} {response.request.url} answered "
                f"{response.status_code} without the qwex error model ({message}); "
                "is the remote base_url a qwex server?"
            )
        raise APIError(response.status_code, code or "http_error", message)

    def _call(self, operation: Callable[[], Response[Any]]) -> Any:
        """Run one generated operation: its 2xx model, or `Unreachable`/`APIError`."""
        import httpx

        try:
            response = operation()
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        except (ValueError, KeyError, TypeError) as exc:  # a 2xx body the models reject
            raise APIError(
                200,
                "invalid_response",
                f"{self.base_url} answered with something that is not the qwex API "
                f"{API_VERSION} ({type(exc).__name__}: {exc}); is the remote base_url a "
                "qwex server of a matching version?",
            ) from None
        if response.parsed is None:
            raise APIError(
                int(response.status_code),
                "invalid_response",
                f"{self.base_url} answered {int(response.status_code)}, which the qwex API "
                f"{API_VERSION} does not define",
            )
        return response.parsed

    def _unreachable(self, exc: Exception) -> Unreachable:
        reason = str(exc) or type(exc).__name__
        return Unreachable(
            f"the qwex server at {self.base_url} did not answer ({type(exc).__name__}: "
            f"{reason}); check that `qwex serve` runs there and that the remote base_url "
            "is right"
        )


def _opt(value: Any) -> Any:
    """The generated models' UNSET as None."""
    from qwex_remote.client.types import Unset

    return None if isinstance(value, Unset) else value


def _needs_tls(base_url: str) -> bool:
    """Whether a client of `base_url` may speak TLS: not to a plain `http://` server reached
    without a proxy. Such a client is made without a certificate store, whose loading costs
    more than the rest of a `qwex list` of a hundred live runs' requests (50-90 ms)."""
    import urllib.request

    if not base_url.startswith("http://"):
        return True
    proxies = urllib.request.getproxies()
    return bool(proxies.get("http") or proxies.get("all"))


def _trace(request: httpx.Request) -> None:
    """`trace`: each request to the server on stderr, as `qwex-remote: GET /api/v1/jobs?...`."""
    import sys

    print(f"qwex-remote: {request.method} {request.url.raw_path.decode()}", file=sys.stderr)


def _when(value: Any) -> str | None:
    value = _opt(value)
    return None if value is None else str(value.isoformat())


def _job(info: JobInfo) -> JobState:
    return JobState(
        id=info.id,
        submission_id=info.submission_id,
        submitter=info.submitter,
        backend=info.backend,
        status=info.status.value,
        reason=_opt(info.reason),
        exit_code=_opt(info.exit_code),
        signal=_opt(info.signal),
        created_at=_when(info.created_at),
        started_at=_when(info.started_at),
        finished_at=_when(info.finished_at),
        cancel_requested=bool(_opt(info.cancel_requested)),
        snapshot=_opt(info.snapshot),
    )


def submission_data(submission: Submission) -> dict[str, Any]:
    """The JSON body of a submission (`POST /jobs`); unset optional fields are left out."""
    data: dict[str, Any] = {
        "submission_id": submission.submission_id,
        "command": list(submission.command),
        "env": dict(submission.env),
        "labels": dict(submission.labels),
        "resources": dict(submission.resources),
        "mounts": [dict(m) for m in submission.mounts],
        "grace_period": submission.grace_period,
    }
    optional = {
        "backend": submission.backend,
        "profile": submission.profile,
        "name": submission.name,
        "image": submission.image,
        "network": submission.network,
        "snapshot": submission.snapshot,
        "workdir": submission.workdir,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if submission.secrets:  # left out otherwise: a server older than secrets refuses the key
        data["secrets"] = dict(submission.secrets)
    return data


def _error_model(content: bytes) -> tuple[str | None, str]:
    """(code, message) of the server's error model, or (None, the start of the body)."""
    try:
        error = json.loads(content)["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = content.decode("utf-8", "replace").strip()
        return None, (text[:200] or "an empty body")


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) of a Server-Sent Events stream; comments and ids are skipped (the
    data carries the offsets)."""
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)


def _bytes(data_b64: Any, text: str) -> bytes:
    """A log piece's bytes: exact from `data_b64`; a server without it sent text only."""
    if isinstance(data_b64, str):
        return base64.b64decode(data_b64)
    return text.encode()


def _follow_event(kind: str, data: str) -> FollowEvent | None:
    body = json.loads(data)
    if kind == "log":
        return LogPiece(
            stream=body["stream"],
            offset=body["offset"],
            next_offset=body["next_offset"],
            data=_bytes(body.get("data_b64"), body["data"]),
        )
    if kind == "end":
        return JobEnd(
            status=body["status"],
            reason=body["reason"],
            exit_code=body["exit_code"],
            signal=body.get("signal"),  # None from a server older than the field
        )
    if kind == "shutdown":
        return ServerShutdown(message=body["message"])
    return None
