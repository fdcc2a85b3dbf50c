"""qwex-remote: the remote backend and server (packaging skeleton; built in its own issue)."""

__version__ = "0.1.0"
