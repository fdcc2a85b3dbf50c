"""Errors a user can act on. The CLI prints them as one short message, exit code 1."""

from __future__ import annotations


class QwexError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


class RunNotFound(QwexError):
    pass


class ConfigError(QwexError):
    pass


class PluginError(QwexError):
    pass


class SpecError(QwexError):
    """The job cannot run as specified (missing image, bad mount...)."""


class BackendError(QwexError):
    """The backend refused or failed (daemon down, image not found...)."""


class SnapshotTooLarge(QwexError):
    """The project snapshot is over the size the backend can carry (a ConfigMap's ~1 MiB).

    `size` is the compressed size in bytes (a lower bound when `size_is_exact` is False),
    `limit` the limit, `biggest` the largest files as (path, bytes)."""

    def __init__(
        self,
        message: str,
        *,
        size: int,
        limit: int,
        biggest: list[tuple[str, int]],
        size_is_exact: bool = True,
    ) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        self.biggest = biggest
        self.size_is_exact = size_is_exact
