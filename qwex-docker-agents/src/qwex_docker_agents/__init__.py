"""Prebuilt qwex agents, one folder per platform (`linux-amd64/`, `linux-arm64/`).

qwex-docker looks here after the user cache (`qwex_docker.bundle.locate`); a
folder is used when its launcher's ELF header matches the image's platform and
its manifest's source digests match the installed qwex-core. Nothing is
imported from this package: it is only a place on disk that pip manages.
"""

__version__ = "0.1.0"
