"""`[tool.qwex.remote]`: which qwex server the `remote` backend submits to, and as whom.

API-client settings live here, in qwex-remote, never in qwex-core's runner models
(docs/architecture.md). The token is a secret: `qwex config` shows it masked, no message
prints it, and it may come from `QWEX_REMOTE_TOKEN` or a file instead of the
project's configuration (which is often committed).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_SNAPSHOT_LIMIT = 64 << 20
"""The server's default `max_snapshot_bytes`: a bigger tree fails here, before any upload."""


class RemoteSettings(BaseModel):
    """Validated `[tool.qwex.remote]` table (also `QWEX_REMOTE_<KEY>` variables)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    base_url: str | None = Field(
        default=None,
        description="the qwex server, e.g. http://127.0.0.1:8765 (`qwex serve` prints it)",
    )
    token: SecretStr | None = Field(
        default=None,
        description="bearer token from `qwex serve token add NAME`; better in QWEX_REMOTE_TOKEN "
        "or token_file than in a committed file",
    )
    token_file: str | None = Field(
        default=None, description="a file holding the token (used when `token` is not set)"
    )
    api_version: str = Field(default="1", description="the REST API version to speak")
    backend: str | None = Field(
        default=None, description="the server-side backend to ask for (default: the server's)"
    )
    profile: str | None = Field(
        default=None, description="a server-side profile to ask for (the server must allow it)"
    )
    secrets: dict[str, str] = Field(
        default_factory=dict,
        description="env var -> name of a secret the server keeps (`qwex serve secret add`), "
        "for every job; `qwex run --secret NAME[=ENVVAR]` adds one",
    )
    timeout: float = Field(default=30.0, gt=0, description="seconds per request to the server")
    snapshot_limit: int = Field(
        default=DEFAULT_SNAPSHOT_LIMIT, gt=0, description="largest project snapshot, in bytes"
    )
    trace: bool = Field(
        default=False,
        description="print every request to the server to stderr (QWEX_REMOTE_TRACE=1)",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {value!r}")
        return value

    def secret(self) -> str | None:
        """The token: `token`, else the first line of `token_file`; None without either."""
        if self.token is not None and self.token.get_secret_value():
            return self.token.get_secret_value().strip()
        if self.token_file:
            from qwex_core.errors import ConfigError

            path = Path(self.token_file).expanduser()
            try:
                text = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the token file {path} (remote.token_file): {exc.strerror or exc}"
                ) from None
            return text.splitlines()[0].strip() if text else None
        return None
