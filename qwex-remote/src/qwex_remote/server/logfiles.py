"""A job's log files, read without following a link: a job can write its own run folder.

A container gets its run folder bind-mounted, so a job can replace its log files (or
a folder on their way) with links to any file of the server's user. Every file is
therefore opened from the job's folder one component at a time with `O_NOFOLLOW`,
and must be a regular file: a link, a FIFO or a device reads as no log at all.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from qwex_core.agent.order import INDEX_FILE

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def open_log(job_dir: str | None, path: str | None) -> Iterator[int | None]:
    """A descriptor of the regular file `path` inside the job's folder `job_dir`, no link
    followed below `job_dir` (which the server made); None when there is no such file."""
    fd = _open_below(job_dir, path) if job_dir and path else None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _open_below(job_dir: str, path: str) -> int | None:
    try:
        parts = Path(path).relative_to(job_dir).parts
    except ValueError:
        return None
    if not parts or ".." in parts:
        return None
    try:
        folder = os.open(job_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR, dir_fd=folder)
            os.close(folder)
            folder = inner
        fd = os.open(parts[-1], _FILE, dir_fd=folder)
    except OSError:  # missing, a link (ELOOP, ENOTDIR), a FIFO without a writer (ENXIO)
        return None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def read_range(
    job_dir: str | None, path: str | None, offset: int, limit: int
) -> tuple[bytes, int, int]:
    """(bytes, next_offset, file size) of at most `limit` bytes of the log from `offset`."""
    with open_log(job_dir, path) as fd:
        if fd is None:
            return b"", offset, 0
        size = os.fstat(fd).st_size
        if offset >= size:  # nothing there, and a huge offset would not even seek
            return b"", offset, size
        data = os.pread(fd, min(limit, size - offset), offset)
    return data, offset + len(data), size


def log_size(job_dir: str | None, path: str | None) -> int:
    with open_log(job_dir, path) as fd:
        return 0 if fd is None else os.fstat(fd).st_size


def chunk_fields(data: bytes) -> dict[str, str]:
    """The bytes as the API carries them: exact (base64) and as text for reading by eye."""
    return {
        "data": data.decode("utf-8", "replace"),
        "data_b64": base64.b64encode(data).decode("ascii"),
    }


STREAMS = ("stdout", "stderr")
INDEX = "index"
"""The job's write-order index (`qwex_core.agent.order`), served as a third stream of bytes
to clients that ask for it, so that their copy replays both streams in write order."""
FILES = (INDEX, *STREAMS)
"""Every file a follower may be sent, in the order of each pass: the index first, so a
copy has it before the output it orders (a reader waits for bytes an entry names)."""


def index_path(stdout_path: str | None) -> str | None:
    """The index beside a job's `stdout.log`."""
    return os.path.join(os.path.dirname(stdout_path), INDEX_FILE) if stdout_path else None


SSE_CHUNK = 256 << 10
"""Most bytes of one `log` event: a long backlog is sent in pieces, the event loop free
between them."""


class JobFiles:
    """One followed job's log files as last looked at, shared by all its followers: the
    sizes (looked at once per change, not once per follower) and the last piece read of
    each stream (the followers at the same offset read it, and encode it, once)."""

    def __init__(self) -> None:
        self.sizes = dict.fromkeys(FILES, 0)
        self._pieces: dict[str, tuple[int, int, str]] = {}

    def look(self, job_dir: str | None, paths: dict[str, str | None]) -> bool:
        """Read the sizes again; whether one changed."""
        sizes = {s: log_size(job_dir, paths.get(s)) for s in FILES}
        changed, self.sizes = sizes != self.sizes, sizes
        return changed

    def piece(self, job_dir: str, path: str | None, stream: str, start: int) -> tuple[int, str]:
        """(next offset, JSON body of the `log` event) of the bytes of `stream` from `start`;
        the next offset is `start` when there are none."""
        cached = self._pieces.get(stream)
        if cached is not None and cached[0] == start:
            return cached[1], cached[2]
        data, end, _size = read_range(job_dir, path, start, SSE_CHUNK)
        if not data:
            return start, ""
        body = {"stream": stream, "offset": start, "next_offset": end, **chunk_fields(data)}
        text = json.dumps(body, separators=(",", ":"))
        self._pieces[stream] = (start, end, text)
        return end, text
