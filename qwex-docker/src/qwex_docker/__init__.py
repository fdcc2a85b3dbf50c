"""qwex-docker: the Docker backend."""

__version__ = "0.1.0"
