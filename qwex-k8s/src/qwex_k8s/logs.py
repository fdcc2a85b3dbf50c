"""Copying a pod's log into the run's log file, so output outlives the pod.

The API server gives a container's log as one stream: stdout and stderr merged
(in the order the kubelet wrote them). qwex appends it to the run's `stdout.log`;
`stderr.log` stays empty for Kubernetes runs (docs/kubernetes.md says so).

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

from qwex_core.agent.record import STDOUT_FILE

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
                return append_new(
                    resp.stream(CHUNK, decode_content=True), out, state, pod, run_dir, stop
                )
        except (HTTPError, OSError):
            return False
        finally:
            resp.release_conn()


def append_new(
    chunks: Iterator[bytes],
    out: BinaryIO,
    state: dict[str, int],
    pod: str,
    run_dir: Path,
    stop: threading.Event | None,
) -> bool:
    """Append the part of the pod's log `chunks` not copied yet, after checking that what
    they repeat of earlier copies is the same bytes. The kubelet ends the body with its
    error text when it cannot read the log (`unable to retrieve container logs for
    containerd://...`, `failed to try resolving symlinks in path ...`): bytes that may be
    such a text are held until more log follows them or the body ends, and never land in
    the run's output. Returns False when the body was not (all) the log."""
    have = state.get(pod, 0)
    end = out.seek(0, os.SEEK_END)
    start = state.get(START + pod, end - have)  # no start kept (an older copy): trust it
    state[START + pod] = start
    checked, pending = 0, b""
    for chunk in chunks:
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
        pending += chunk
        keep = held_from(pending)
        if keep:
            _write(out, state, pod, pending[:keep], run_dir)
            pending = pending[keep:]
    if checked < have or ERROR_TAIL.match(pending):
        return False  # shorter than what was copied, or the kubelet's error: not the log
    if pending:
        _write(out, state, pod, pending, run_dir)
    state.setdefault(pod, 0)
    _save(run_dir, state)
    return True


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


def _write(out: BinaryIO, state: dict[str, int], pod: str, data: bytes, run_dir: Path) -> None:
    out.seek(0, os.SEEK_END)
    out.write(data)
    out.flush()
    state[pod] = state.get(pod, 0) + len(data)
    _save(run_dir, state)
