"""`[tool.qwex.server]`: where the server keeps its data, and what a remote submission may use.

The policy keys are deliberately few. By default a remote job runs only in the
Docker backend, in its own unpacked snapshot, mounts nothing of the server's
filesystem, uses the daemon's default network and is never privileged (qwex
has no way to ask for a privileged container at all). An administrator widens
it explicitly, e.g. `backends = ["docker", "local"]` (a local job runs as the
server's own user, so it can read what that user can).

The limits bound what one token holder can make the server hold: a request body
(`max_request_bytes`), a snapshot upload and what it unpacks to
(`max_snapshot_bytes`, `max_snapshot_unpacked_bytes`, `max_snapshot_files`), and how
long a final job's files stay on disk (`job_retention`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from qwex_core.models import parse_memory

DEFAULT_SNAPSHOT_LIMIT = 64 << 20
DEFAULT_REQUEST_LIMIT = 1 << 20
UNPACKED_RATIO = 16
"""The default of `max_snapshot_unpacked_bytes`: this many times `max_snapshot_bytes`."""
DEFAULT_SNAPSHOT_FILES = 100_000
DEFAULT_RETENTION = "7d"
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/qwex` (default `~/.local/share/qwex`)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "qwex"


def parse_duration(value: Any) -> float | None:
    """Seconds from `3600`, `"90s"`, `"30m"`, `"12h"`, `"7d"` or `"2w"`; None for `"never"`."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "never"):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
    if isinstance(value, bool) or match is None:
        raise ValueError(
            f'{value!r} is not a duration: give seconds or e.g. "7d", "12h", "30m" (or "never")'
        )
    return float(match[1]) * UNITS[match[2]]


class ServerSettings(BaseModel):
    """Validated `[tool.qwex.server]` table (also `QWEX_SERVER_<KEY>` variables)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    data_dir: str | None = Field(
        default=None,
        description="where the database (SQLite), snapshots, job folders and logs live "
        "(default: $XDG_DATA_HOME/qwex)",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@127.0.0.1:5432/qwex "
        "(default: SQLite in WAL mode at DATA_DIR/server.db)",
    )
    backends: list[str] = Field(
        default_factory=lambda: ["docker"], description="backends a remote submission may use"
    )
    default_backend: str = Field(
        default="docker", description="the backend of a submission that names none"
    )
    profiles: list[str] = Field(
        default_factory=list,
        description="profiles of the server's configuration ([tool.qwex.profiles.NAME]) a "
        "submission may name; the profile's settings are the administrator's",
    )
    images: list[str] = Field(
        default_factory=lambda: ["*"],
        description="image patterns (fnmatch) a container job may use",
    )
    mounts: list[str] = Field(
        default_factory=list,
        description="host directories a job may mount (a mount's source must be inside one); "
        "default: none",
    )
    networks: list[str] = Field(
        default_factory=list,
        description="container networks a job may name (default: only the daemon's default)",
    )
    max_cpu: float | None = Field(default=None, gt=0, description="most CPU cores a job may ask")
    max_memory: str | None = Field(default=None, description="most memory a job may ask, e.g. 8Gi")
    max_gpu: int | None = Field(default=None, ge=0, description="most GPUs a job may ask")
    max_snapshot_bytes: int = Field(
        default=DEFAULT_SNAPSHOT_LIMIT, gt=0, description="largest snapshot upload, in bytes"
    )
    max_snapshot_unpacked_bytes: int | None = Field(
        default=None,
        gt=0,
        description="most bytes a snapshot may unpack to, checked at upload and at unpack "
        f"(default: {UNPACKED_RATIO} times max_snapshot_bytes, 1 GiB for 64 MiB)",
    )
    max_snapshot_files: int = Field(
        default=DEFAULT_SNAPSHOT_FILES,
        gt=0,
        description="most files (archive members) a snapshot may hold",
    )
    max_request_bytes: int = Field(
        default=DEFAULT_REQUEST_LIMIT,
        gt=0,
        description="largest request body but a snapshot upload, in bytes (a submission)",
    )
    job_retention: float | None = Field(
        default=parse_duration(DEFAULT_RETENTION),
        description="how long a final job's folder keeps its files (its snapshot unpacked, "
        'what the job wrote) before they are removed: seconds or e.g. "7d", "12h", "30m"; '
        '"never" keeps them. The run record and logs stay.',
    )
    sse_keepalive: float = Field(
        default=15.0, gt=0, description="seconds of silence before a log stream sends a keepalive"
    )
    concurrency: int = Field(
        default=4,
        ge=0,
        description="jobs this server runs at once; 0: it only queues them (for other servers "
        "on the same database to run)",
    )

    @field_validator("job_retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("max_memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is not None:
            parse_memory(str(value))  # the string kept is what the policy parses (not True)
            return str(value)
        return value

    @model_validator(mode="after")
    def _default_is_allowed(self) -> ServerSettings:
        if self.default_backend not in self.backends:
            raise ValueError(
                f"default_backend {self.default_backend!r} is not one of backends "
                f"({', '.join(self.backends) or 'none'}); add it there or choose another"
            )
        return self

    def unpacked_limit(self) -> int:
        """`max_snapshot_unpacked_bytes`, or its default from `max_snapshot_bytes`."""
        return self.max_snapshot_unpacked_bytes or UNPACKED_RATIO * self.max_snapshot_bytes

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir() / 'server.db'}"
