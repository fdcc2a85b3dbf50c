"""Copying a pod's log into the run's log file, so output outlives the pod.

The API server gives a container's log as one stream: stdout and stderr merged
(in the order the kubelet wrote them). qwex appends it to the run's `stdout.log`;
`stderr.log` stays empty for Kubernetes runs (docs/kubernetes.md says so). The log is
asked for with the kubelet's timestamps (`timestamps=true`: each line begins with its
RFC 3339 time and a space); they go to the run's write-order index
(`qwex_core.agent.order`), never into the log, so `qwex logs -t/--since` show and choose
lines by the kubelet's times. A line that does not begin with a time (an error text in
place of the log) is indexed with the time it was copied.

Copies resume exactly: `k8s-logs.json` in the run folder counts the bytes already
copied from each pod and where in the file they begin, so a dropped stream, a
second follower or another qwex process goes on where the last copy stopped,
never duplicating or losing a line. A new copy reads the pod's log from its
start and appends only after the bytes it repeats match what was copied: text
the API server sends in place of a log (a container being removed) is never
taken for output.
One process copies at a time (an exclusive lock on `k8s-logs.lock`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from qwex_core.agent.order import INDEX_FILE, STREAM_CODES
from qwex_core.agent.order import record as index_record
from qwex_core.agent.record import STDOUT_FILE
from qwex_core.logtimes import parse_time

from qwex_k8s.manifests import MAIN

if TYPE_CHECKING:
    from kubernetes import client

LOCK_FILE = "k8s-logs.lock"
STATE_FILE = "k8s-logs.json"
CHUNK = 1 << 16
START = "@start:"
"""State key prefix: where in `stdout.log` a pod's copied log begins."""
POD_LOG = rb'"[^"\n]*/[^/"\n]+_[^/"\n]+_[0-9a-f-]{36}/[^/"\n]+/[0-9]+\.log"'
"""A path of the kubelet's pod logs: `.../<namespace>_<pod>_<uid>/<container>/<n>.log`."""
KUBELET_ERRORS = (
    b"unable to retrieve container logs for ",
    b"failed to try resolving symlinks in path ",
    b"failed to open log file ",
    b"failed to read log file ",
    b"failed to reset seek in log file ",
    b"failed to tail ",
    b"failed to seek ",
)
"""How the kubelet's errors begin when it cannot read a container's log."""
ERROR_TAIL = re.compile(
    rb"(?:unable to retrieve container logs for [a-z0-9-]+://[0-9a-f]{64}"
    rb"|failed to (?:try resolving symlinks in path|open log file|read log file"
    rb"|reset seek in log file|tail [0-9]+ lines of log file|seek [0-9]+ in log file) "
    + POD_LOG
    + rb": [^\n]*)\n?\Z"
)
"""The kubelet's error text at the end of a log body: it has sent the log's headers (200)
before it finds the log unreadable, so the error comes as the body's last bytes."""
HOLD = 4096
"""Most bytes held back while they might still be that text."""
LONGEST_STAMP = 40
"""More bytes than any RFC 3339 time with nanoseconds and a zone."""
Piece = tuple[bytes, int | None]
"""Bytes of the log and the kubelet's time of the line they belong to (None: not known)."""


class Unstamp:
    """Splits the API's `timestamps=true` log into the container's bytes and each line's
    time: the kubelet puts `TIME ` before every line (only before the first part of a line
    the runtime split, since Kubernetes 1.27); chunks may cut anywhere."""

    def __init__(self) -> None:
        self.at_line_start = True
        self.head = b""
        self.time: int | None = None

    def feed(self, chunk: bytes) -> Iterator[Piece]:
        pos = 0
        while pos < len(chunk):
            if self.at_line_start:
                space = chunk.find(b" ", pos, pos + LONGEST_STAMP + 1 - len(self.head))
                if space < 0:
                    self.head += chunk[pos:]
                    if len(self.head) <= LONGEST_STAMP:
                        return  # the stamp may go on in the next chunk
                    yield from self._unstamped(b"")
                    return
                self.head += chunk[pos:space]
                pos = space + 1
                when = parse_time(self.head.decode("ascii", "replace"))
                if when is None:
                    yield from self._unstamped(b" ")
                    continue
                self.time, self.head, self.at_line_start = when, b"", False
                continue
            newline = chunk.find(b"\n", pos)
            end = len(chunk) if newline < 0 else newline + 1
            yield chunk[pos:end], self.time
            pos = end
            self.at_line_start = newline >= 0

    def _unstamped(self, rest: bytes) -> Iterator[Piece]:
        """The line began with no time: its bytes are the log's, of unknown time."""
        data, self.head, self.time, self.at_line_start = self.head + rest, b"", None, False
        newline = data.find(b"\n")
        if newline >= 0:  # a line without a time ended inside what was held
            yield data[: newline + 1], None
            self.at_line_start = True
            yield from self.feed(data[newline + 1 :])
        elif data:
            yield data, None

    def end(self) -> Iterator[Piece]:
        """What is left at the end of the log: held bytes that were not a time."""
        if self.head and parse_time(self.head.decode("ascii", "replace")) is None:
            yield self.head, None
        self.head = b""

    def pieces(self, chunks: Iterator[bytes]) -> Iterator[Piece]:
        for chunk in chunks:
            yield from self.feed(chunk)
        yield from self.end()


@contextlib.contextmanager
def copy_lock(run_dir: Path, *, wait: float, stop: threading.Event | None = None) -> Iterator[bool]:
    """Hold the run's log-copy lock; yields False when it could not be had within `wait` s."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def copied(run_dir: Path) -> dict[str, int]:
    """Bytes copied so far from each pod."""
    try:
        data = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save(run_dir: Path, state: dict[str, int]) -> None:
    tmp = run_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, run_dir / STATE_FILE)


def copy_pod_log(
    core: client.CoreV1Api,
    namespace: str,
    pod: str,
    run_dir: Path,
    *,
    follow: bool,
    timeout: float,
    lock_wait: float = 10.0,
    stop: threading.Event | None = None,
) -> bool:
    """Append what the pod's main container logged since the last copy to `stdout.log`.

    With `follow`, keep copying as it logs until the stream ends (the container exited,
    or the connection dropped). `timeout`: seconds per request (not followed); `lock_wait`:
    seconds to wait for another copier to finish. Returns True when the stream ended
    normally; False when the log could not be read (no such pod, not started, lock held)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    with copy_lock(run_dir, wait=lock_wait, stop=stop) as locked:
        if not locked:
            return False
        state = copied(run_dir)
        try:
            resp: Any = core.read_namespaced_pod_log(
                pod,
                namespace,
                container=MAIN,
                follow=follow,
                timestamps=True,
                _preload_content=False,
                _request_timeout=None if follow else timeout,
            )
        except ApiException:
            return False
        except HTTPError:
            return False
        try:
            fd = os.open(run_dir / STDOUT_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "r+b") as out:
                chunks = resp.stream(CHUNK, decode_content=True)
                return copy_stamped_chunks(chunks, out, state, pod, run_dir, stop)
        except (HTTPError, OSError):
            return False
        finally:
            resp.release_conn()


def copy_stamped_chunks(
    chunks: Iterator[bytes],
    out: BinaryIO,
    state: dict[str, int],
    pod: str,
    run_dir: Path,
    stop: threading.Event | None,
) -> bool:
    """`append_new` of the API's `timestamps=true` log `chunks`, indexing each piece with
    its line's time in the run's write-order index (made before any byte is appended)."""
    index = os.open(
        run_dir / INDEX_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644
    )
    try:
        return append_new(Unstamp().pieces(chunks), out, state, pod, run_dir, stop, index)
    finally:
        os.close(index)


def append_new(
    chunks: Iterator[bytes] | Iterator[Piece],
    out: BinaryIO,
    state: dict[str, int],
    pod: str,
    run_dir: Path,
    stop: threading.Event | None,
    index: int | None = None,
) -> bool:
    """Append the part of the pod's log `chunks` not copied yet, after checking that what
    they repeat of earlier copies is the same bytes. The kubelet ends the body with its
    error text when it cannot read the log (`unable to retrieve container logs for
    containerd://...`, `failed to try resolving symlinks in path ...`): bytes that may be
    such a text are held until more log follows them or the body ends, and never land in
    the run's output. Chunks may come with their time (`Piece`s): each appended piece is
    then recorded in the write-order index `index` (a descriptor), after its bytes.
    Returns False when the body was not (all) the log."""
    have = state.get(pod, 0)
    end = out.seek(0, os.SEEK_END)
    start = state.get(START + pod, end - have)  # no start kept (an older copy): trust it
    state[START + pod] = start
    checked = 0
    pending: list[Piece] = []
    for item in chunks:
        chunk, when = item if isinstance(item, tuple) else (item, None)
        if stop is not None and stop.is_set():
            return False
        if checked < have:
            part = chunk[: have - checked]
            out.seek(start + checked)
            if out.read(len(part)) != part:
                return False  # not the log copied so far
            checked += len(part)
            chunk = chunk[len(part) :]
        if not chunk:
            continue
        pending.append((chunk, when))
        data = b"".join(p for p, _ in pending)
        keep = held_from(data)
        if keep:
            pending = _write_upto(out, state, pod, run_dir, index, pending, keep)
    held = b"".join(p for p, _ in pending)
    if checked < have or ERROR_TAIL.match(held):
        return False  # shorter than what was copied, or the kubelet's error: not the log
    _write_upto(out, state, pod, run_dir, index, pending, len(held))
    state.setdefault(pod, 0)
    _save(run_dir, state)
    return True


def _write_upto(
    out: BinaryIO,
    state: dict[str, int],
    pod: str,
    run_dir: Path,
    index: int | None,
    pending: list[Piece],
    count: int,
) -> list[Piece]:
    """Append the first `count` bytes of `pending` (each piece with its time); the rest."""
    rest: list[Piece] = []
    for data, when in pending:
        if count <= 0:
            rest.append((data, when))
            continue
        now, later = data[:count], data[count:]
        _write(out, state, pod, now, run_dir, index, when)
        count -= len(now)
        if later:
            rest.append((later, when))
    return rest


def held_from(data: bytes) -> int:
    """Where the bytes that may still be the kubelet's error text begin in `data` (its
    length when none may): a complete error at the end, or the start of one cut short
    (the error is one line: only the last, unfinished line can hold its start)."""
    lo = max(0, len(data) - HOLD)
    found = ERROR_TAIL.search(data, lo)
    if found:
        return found.start()
    i = max(lo, data.rfind(b"\n") + 1)
    while (i := _next_start(data, i)) < len(data):
        rest = data[i:]
        if any(e.startswith(rest) or rest.startswith(e) for e in KUBELET_ERRORS):
            return i
        i += 1
    return len(data)


def _next_start(data: bytes, i: int) -> int:
    """The next position from `i` where an error text could begin."""
    found = [p for p in (data.find(b"u", i), data.find(b"f", i)) if p >= 0]
    return min(found, default=len(data))


def _write(
    out: BinaryIO,
    state: dict[str, int],
    pod: str,
    data: bytes,
    run_dir: Path,
    index: int | None = None,
    when: int | None = None,
) -> None:
    offset = out.seek(0, os.SEEK_END)
    out.write(data)
    out.flush()
    if index is not None:  # after the bytes: a reader never finds an entry without them
        stamp = when if when is not None else time.time_ns()
        os.write(index, index_record(stamp, STREAM_CODES["stdout"], offset, len(data)))
    state[pod] = state.get(pod, 0) + len(data)
    _save(run_dir, state)
