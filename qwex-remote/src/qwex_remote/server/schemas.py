"""The REST API's request and response models (`/api/v1`).

A submission carries the fields of core's `JobSpec` a remote user may set,
with core's own `ResourceRequirements` and `Mount` models; where the job runs
on the server (its folder, the project mount) is the server's business.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    field_validator,
    model_validator,
)
from qwex_core.models import Mount, ResourceRequirements, RunStatus, check_env, check_env_name

SHA256 = r"^[0-9a-f]{64}$"

# What one submission may carry (each stored row is served in every page of `GET /jobs`):
MAX_ARGS, MAX_ARG = 4096, 131072  # Linux's MAX_ARG_STRLEN per argument
MAX_ENV, MAX_ENV_NAME, MAX_ENV_VALUE = 256, 256, 131072
MAX_LABELS, MAX_LABEL_KEY, MAX_LABEL_VALUE = 64, 253, 1024
MAX_MOUNTS, MAX_PATH = 32, 4096
Arg = Annotated[str, Field(max_length=MAX_ARG)]
EnvName = Annotated[str, Field(max_length=MAX_ENV_NAME)]
EnvValue = Annotated[str, Field(max_length=MAX_ENV_VALUE)]
LabelKey = Annotated[str, Field(max_length=MAX_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]


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
    command: list[Arg] = Field(
        min_length=1, max_length=MAX_ARGS, description="the command and its arguments"
    )
    backend: str | None = Field(
        default=None,
        max_length=64,
        description="a backend the server allows (default: the server's)",
    )
    profile: str | None = Field(
        default=None, max_length=63, description="a server-side profile the server allows"
    )
    name: str | None = Field(default=None, max_length=63)
    image: str | None = Field(
        default=None, max_length=512, description="container image (container backends)"
    )
    env: dict[EnvName, EnvValue] = Field(default_factory=dict, max_length=MAX_ENV)
    secrets: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="environment variable -> name of a server-side secret (`qwex serve secret "
        "add NAME`): the job gets the value in that variable; no route or record shows it",
    )
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    mounts: list[Mount] = Field(
        default_factory=list,
        max_length=MAX_MOUNTS,
        description=f"refused unless allowed; source and target at most {MAX_PATH} characters",
    )
    network: str | None = Field(
        default=None, max_length=255, description="container network, if allowed"
    )
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

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        """What a process can be given (core's rule), checked here: at start is too late."""
        return check_env(value)

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: dict[str, str]) -> dict[str, str]:
        from qwex_remote.server.secrets import NAME

        for var, name in value.items():
            check_env_name(var)
            if not NAME.fullmatch(name):
                raise ValueError(f"secret name {name!r} (for {var}) is not a secret's name")
        return value

    @model_validator(mode="after")
    def _env_or_secret(self) -> JobSubmission:
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(f"{both[0]} is in both env and secrets: give it one of them")
        return self

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

    @field_validator("mounts")
    @classmethod
    def _short_paths(cls, value: list[Mount]) -> list[Mount]:
        for mount in value:
            if max(len(mount.source), len(mount.target)) > MAX_PATH:
                raise ValueError(f"a mount's source or target is over {MAX_PATH} characters")
        return value

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
    signal: str | None = None
    """The signal that ended the command (`SIGTERM`), if one did."""
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
