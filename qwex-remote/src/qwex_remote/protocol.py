"""What the remote runner needs from a qwex server, as a protocol.

`RemoteRunner` depends on this and nothing else of the API: `adapter.py`
implements it with the generated client (`qwex_remote.client`), and only the
adapter may import that client (an import-linter contract says so). The types
here are plain dataclasses, so a regenerated client never ripples further.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from qwex_core.errors import BackendError

API_VERSION = "1"
"""The REST API version this client speaks (`/api/v1`)."""


class APIError(BackendError):
    """A non-2xx answer of the server: its HTTP status and the error model's code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unreachable(BackendError):
    """The server did not answer (refused, timed out, connection dropped)."""


class Degraded(Unreachable):
    """The server answered 503 `unavailable` (its database is down, or it is stopping):
    up, but unable to serve now; a client waits and asks again, as when it did not answer."""


@dataclass(frozen=True)
class ServerHealth:
    server_version: str
    api_version: str


@dataclass(frozen=True)
class Submission:
    """A job to submit; `submission_id` makes a retry return the same job."""

    submission_id: str
    command: list[str]
    backend: str | None = None
    profile: str | None = None
    name: str | None = None
    image: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Env var -> name of a server-side secret; the server gives the job its value."""
    resources: Mapping[str, Any] = field(default_factory=dict)
    """`qwex_core.models.ResourceRequirements` as JSON data."""
    mounts: list[Mapping[str, Any]] = field(default_factory=list)
    """`qwex_core.models.Mount`s as JSON data."""
    network: str | None = None
    grace_period: float = 10.0
    snapshot: str | None = None
    workdir: str | None = None
    """Where the command starts, relative to the snapshot's root (default: the root)."""


@dataclass(frozen=True)
class JobState:
    """A job as the server sees it now."""

    id: str
    submission_id: str
    submitter: str
    backend: str
    status: str
    """A `qwex_core.models.RunStatus` value."""
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    """The signal that ended the command; None from a server older than the field."""
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool = False
    snapshot: str | None = None


@dataclass(frozen=True)
class JobList:
    items: list[JobState]
    next_cursor: str | None


@dataclass(frozen=True)
class LogPiece:
    """Output of one stream from byte `offset` to `next_offset`: the bytes as the job wrote
    them (not text: a job may print anything). Stream `index` is the job's write-order
    index (`qwex_core.agent.order`), copied byte for byte like the output it orders."""

    stream: Literal["stdout", "stderr", "index"]
    offset: int
    next_offset: int
    data: bytes
    final: bool = False


@dataclass(frozen=True)
class JobEnd:
    """The last event of a followed job: its final status."""

    status: str
    reason: str | None
    exit_code: int | None
    signal: str | None = None


@dataclass(frozen=True)
class ServerShutdown:
    """The server stopped before the job ended: follow again later from the same offsets."""

    message: str


FollowEvent = LogPiece | JobEnd | ServerShutdown


class JobAPIClient(Protocol):
    """The qwex server's `/api/v1`, as the remote runner uses it. Every method raises
    `APIError` for an error answer and `Unreachable` when the server does not answer."""

    def health(self) -> ServerHealth: ...

    def submit(self, submission: Submission) -> JobState: ...

    def get(self, job_id: str) -> JobState: ...

    def list(
        self,
        *,
        statuses: list[str] | None = None,
        backend: str | None = None,
        submitter: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobList: ...

    def cancel(self, job_id: str) -> JobState: ...

    def has_snapshot(self, sha256: str) -> bool: ...

    def put_snapshot(self, sha256: str, archive: Path) -> None: ...

    def logs(
        self, job_id: str, stream: Literal["stdout", "stderr", "index"], offset: int, limit: int
    ) -> LogPiece: ...

    def follow(self, job_id: str, offsets: Mapping[str, int]) -> Iterator[FollowEvent]:
        """Server-Sent Events from `offsets` (bytes per stream) until `JobEnd` or
        `ServerShutdown`; closing the iterator closes the connection. With an `index`
        offset, the write-order index comes too (a server from before it sends none)."""
        ...

    def close(self) -> None: ...
