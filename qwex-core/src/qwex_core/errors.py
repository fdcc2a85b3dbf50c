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
