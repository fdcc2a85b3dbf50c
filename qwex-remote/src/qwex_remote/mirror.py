"""The local copy of a remote job's output: the run's own log files, kept by byte offsets.

The server's offsets are bytes of its log files and it sends the bytes themselves,
which are written as received: the local file is the server's, byte for byte. The
server offsets copied so far are kept beside the logs (`remote-offsets.json`, with
the local sizes: a copy made before the server sent bytes, as decoded text, may be
shorter or longer), and every append happens under a lock on the run folder: two
qwex processes following the same run never write a line twice. The job's
write-order index (`output.idx`) is copied the same way, as a third stream, so the
local run replays both streams in the order the job wrote them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from qwex_core.agent.order import INDEX_FILE
from qwex_core.agent.record import STDERR_FILE, STDOUT_FILE

from qwex_remote.protocol import LogPiece

STREAMS: tuple[Literal["index", "stdout", "stderr"], ...] = ("index", "stdout", "stderr")
"""What is copied: the index first (a reader waits for bytes an entry names)."""

OFFSETS_FILE = "remote-offsets.json"
LOCK_FILE = ".remote.lock"


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's copy lock (an flock: released if the process dies)."""
    fd = os.open(run_dir / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o664)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _state(run_dir: Path) -> dict[str, int]:
    """Per stream: the server offset copied so far (`stdout`) and the local file's size
    then (`stdout_bytes`)."""
    try:
        data = json.loads((run_dir / OFFSETS_FILE).read_text())
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    state: dict[str, int] = {s: int(data.get(s, 0)) for s in STREAMS}
    for stream in STREAMS:
        size = data.get(f"{stream}_bytes")
        if size is None and state[stream] > 0:  # copied before sizes were kept: it stands
            with contextlib.suppress(OSError):
                size = (run_dir / _log_name(stream)).stat().st_size
        state[f"{stream}_bytes"] = int(size or 0)
    return state


def _log_name(stream: str) -> str:
    return {"stdout": STDOUT_FILE, "stderr": STDERR_FILE, "index": INDEX_FILE}[stream]


def offsets(run_dir: Path) -> dict[str, int]:
    """The server byte offsets of each stream copied so far."""
    state = _state(run_dir)
    return {s: state[s] for s in STREAMS}


def append(run_dir: Path, piece: LogPiece) -> bool:
    """Append what of `piece` is not copied yet; False when it starts past what was copied
    (a gap: fetch from `offsets` first)."""
    with locked(run_dir):
        return append_locked(run_dir, piece)


def append_locked(run_dir: Path, piece: LogPiece) -> bool:
    """`append`, for a caller holding the lock. The local file is first cut back to its size
    at the last recorded copy: a copy cut short (the process ended mid-write) is redone
    whole, never doubled."""
    done = _state(run_dir)
    have = done[piece.stream]
    if piece.next_offset <= have:
        return True
    if piece.offset > have:
        return False
    data = piece.data
    if have > piece.offset:  # partly copied by another follower
        data = data[have - piece.offset :]
    size = f"{piece.stream}_bytes"
    fd = os.open(run_dir / _log_name(piece.stream), os.O_RDWR | os.O_CREAT, 0o664)
    with os.fdopen(fd, "r+b") as fh:
        fh.truncate(done[size])
        fh.seek(done[size])
        fh.write(data)
        done[size] = fh.tell()
    done[piece.stream] = piece.next_offset
    tmp = run_dir / f".{OFFSETS_FILE}.tmp"
    tmp.write_text(json.dumps(done))
    os.replace(tmp, run_dir / OFFSETS_FILE)
    return True
