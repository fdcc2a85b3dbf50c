"""The REST API's request and response models (`/api/v1`).

A submission carries the fields of core's `JobSpec` a remote user may set,
with core's own `ResourceRequirements` and `Mount` models; where the job runs
on the server (its folder, the project mount) is the server's business.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, field_validator
from qwex_core.models import Mount, ResourceRequirements, RunStatus

SHA256 = r"^[0-9a-f]{64}$"


class JobSubmission(BaseModel):
    """A job to run. Sending the same `submission_id` again returns the job it made."""

    model_config = ConfigDict(extra="forbid")

    submission_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="chosen by the client, unique per submitter: a retry with the same id "
        "and spec returns the same job",
    )
    command: list[str] = Field(min_length=1, description="the command and its arguments")
    backend: str | None = Field(
        default=None, description="a backend the server allows (default: the server's)"
    )
    profile: str | None = Field(
        default=None, max_length=63, description="a server-side profile the server allows"
    )
    name: str | None = Field(default=None, max_length=63)
    image: str | None = Field(default=None, description="container image (container backends)")
    env: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    mounts: list[Mount] = Field(default_factory=list, description="refused unless allowed")
    network: str | None = Field(default=None, description="container network, if allowed")
    grace_period: float = Field(default=10.0, ge=0, le=3600)
    snapshot: str | None = Field(
        default=None, pattern=SHA256, description="sha256 of an uploaded snapshot to run in"
    )
    workdir: str | None = Field(
        default=None,
        max_length=1024,
        description="the folder of the snapshot the command starts in, relative to its root "
        "(default: the root)",
    )

    @field_validator("workdir")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        """A relative path that cannot leave the snapshot's folder by its own words."""
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\x00" in value:
            raise ValueError("workdir must be a relative path inside the snapshot, without '..'")
        return None if str(path) == "." else str(path)

    def spec_data(self) -> dict[str, Any]:
        """The submission without its id: what must match on a retry."""
        return self.model_dump(mode="json", exclude={"submission_id"})


class JobInfo(BaseModel):
    id: str
    submission_id: str
    submitter: str
    backend: str
    status: RunStatus
    reason: str | None = None
    exit_code: int | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    snapshot: str | None = None
    spec: SkipValidation[dict[str, Any]]
    """What the server stored from a validated submission: not checked again per listing."""


class JobPage(BaseModel):
    items: list[JobInfo]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next (older) page; null at the end"
    )


class LogChunk(BaseModel):
    """The bytes of one stream's log from byte `offset` to `next_offset`, exactly as the job
    wrote them in `data_b64`; `data` is the same bytes as text (UTF-8, each invalid byte
    and a character cut at either end replaced by U+FFFD), for reading by eye."""

    stream: str
    offset: int
    next_offset: int
    data: str = Field(description="the bytes decoded as UTF-8, invalid ones replaced")
    data_b64: str = Field(description="the bytes, base64-encoded: what a copy of the log keeps")
    final: bool = Field(description="the job is final and nothing follows `next_offset`")


class Health(BaseModel):
    status: str = "ok"
    server_version: str
    api_version: str


class SnapshotInfo(BaseModel):
    sha256: str
    size: int


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. unauthorized, policy_refused")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
