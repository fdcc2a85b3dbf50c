"""A pod's log as the run's output: its bytes, the kubelet's time of each line.

The API server gives a container's log as one stream: stdout and stderr merged (in the
order the kubelet wrote them), so a Kubernetes run's output is all in its `stdout.log`
(docs/kubernetes.md says so). The runner hands core the log bytes (`read_log`, and
`follow_log` as the kubelet streams them) and core appends them to the run's log; the
log is asked for with the kubelet's timestamps (`timestamps=true`: each line begins with
its RFC 3339 time and a space), which go to core as each piece's time (`LogBytes.at`,
the run's write-order index), never into the log.

The API cannot start a log at a byte offset: each read gives the pod's log from its
start and the bytes the run's log already has are skipped. A run's pods (a retry, a
readmission after preemption) each have a log, appended one after the other: each
`LogBytes` names its pod as its source, and core keeps where each source begins in the
run's log. The kubelet answers 200 and then its error text when it cannot read a log
(`unable to retrieve container logs for ...`, `failed to try resolving symlinks in path
...`): bytes that may be that text are held back until more log follows them or the body
ends, and it never reaches the run's output.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from qwex_core.errors import BackendError
from qwex_core.logtimes import parse_time
from qwex_core.observed import LogBytes

from qwex_k8s.manifests import MAIN

LEGACY_STATE = "k8s-logs.json"
"""Where a qwex before the observed contract kept its own copy's offsets (read only)."""
LEGACY_START = "@start:"
CHUNK = 1 << 16
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
"""Bytes of the log and the kubelet's time of the line they belong to (ns; None: not known)."""


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


def log_pieces(chunks: Iterable[bytes], dropped: list[bytes] | None = None) -> Iterator[Piece]:
    """The container's log in the API's `timestamps=true` body `chunks`: its bytes with
    their line's time, the kubelet's error text left out (bytes that may be it are held
    until more log follows them; at the body's end, the text itself is dropped and added
    to `dropped`)."""
    pending: list[Piece] = []
    for piece in Unstamp().pieces(iter(chunks)):
        pending.append(piece)
        keep = held_from(b"".join(p for p, _ in pending))
        if keep:
            ready, pending = _split(pending, keep)
            yield from ready
    held = b"".join(p for p, _ in pending)
    if not ERROR_TAIL.match(held):
        yield from pending
    elif dropped is not None:
        dropped.append(held)


def _split(pieces: list[Piece], count: int) -> tuple[list[Piece], list[Piece]]:
    """The first `count` bytes of `pieces` (each with its time), and the rest."""
    first: list[Piece] = []
    rest: list[Piece] = []
    for data, when in pieces:
        if count <= 0:
            rest.append((data, when))
            continue
        first.append((data[:count], when))
        if len(data) > count:
            rest.append((data[count:], when))
        count -= len(data)
    return first, rest


def skip(pieces: Iterable[Piece], count: int) -> Iterator[Piece]:
    """`pieces` without their first `count` bytes (those the run's log has already)."""
    for data, when in pieces:
        if count >= len(data):
            count -= len(data)
            continue
        yield data[max(count, 0) :], when
        count = 0


def as_log_bytes(pieces: Iterable[Piece], stream: str, offset: int, pod: str) -> list[LogBytes]:
    """`pieces` as core's `LogBytes` from local `offset` on, their source the pod."""
    found = []
    for data, when in pieces:
        found.append(LogBytes(stream, offset, data, at=_time(when), source=pod))
        offset += len(data)
    return found


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(ns: int | None) -> datetime | None:
    """The kubelet's time of a line (ns) for core, to the microsecond (a datetime's)."""
    return None if ns is None else EPOCH + timedelta(microseconds=ns // 1000)


@dataclass(frozen=True)
class PodLog:
    """A pod's log as one read found it."""

    pieces: list[Piece]
    cut: bool
    """The kubelet's error text came in place of the log or after part of it: the node no
    longer has (all of) it."""


def read_pod_log(core: Any, namespace: str, pod: str, *, timeout: float) -> PodLog | None:
    """The pod's main-container log as it is now; None when there is none to have (no such
    pod any more, its container not started). Raises `BackendError` when the API server
    cannot be asked now."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        resp = core.read_namespaced_pod_log(
            pod,
            namespace,
            container=MAIN,
            timestamps=True,
            _preload_content=False,
            _request_timeout=timeout,
        )
    except ApiException as exc:
        if exc.status in (400, 404):
            return None
        raise BackendError(f"cannot read the log of pod {pod}: {exc.reason}") from None
    except (HTTPError, OSError) as exc:
        raise BackendError(f"cannot read the log of pod {pod}: {exc}") from None
    try:
        dropped: list[bytes] = []
        pieces = list(log_pieces(resp.stream(CHUNK, decode_content=True), dropped))
        return PodLog(pieces, bool(dropped))
    except (HTTPError, OSError) as exc:
        raise BackendError(f"cannot read the log of pod {pod}: {exc}") from None
    finally:
        resp.release_conn()


@dataclass(frozen=True)
class Ended:
    """A followed pod log's stream ended (`error`: it could not be had)."""

    pod: str
    error: str | None = None


class Follower:
    """Follows one pod's log in a thread (`follow=True`: as the kubelet writes it, until
    the container exits or the connection drops), putting `LogBytes` in `out`, then
    `Ended`."""

    def __init__(self, core: Any, namespace: str, pod: str, out: queue.SimpleQueue[Any]) -> None:
        self.core, self.namespace, self.pod, self.out = core, namespace, pod, out
        self._stop = threading.Event()
        self._resp: Any = None

    def start(self, skipped: int, offset: int) -> None:
        """Follow, leaving out the first `skipped` bytes; the rest go to local `offset` on."""
        threading.Thread(
            target=self._run, args=(skipped, offset), daemon=True, name="qwex-k8s-log"
        ).start()

    def stop(self) -> None:
        """Stop following (the connection is shut, which ends a read waiting on it)."""
        self._stop.set()
        resp = self._resp
        with contextlib.suppress(Exception):
            sock = resp.connection.sock if resp is not None and resp.connection else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)

    def _run(self, skipped: int, offset: int) -> None:
        from kubernetes.client.exceptions import ApiException

        error = None
        try:
            self._resp = self.core.read_namespaced_pod_log(
                self.pod,
                self.namespace,
                container=MAIN,
                follow=True,
                timestamps=True,
                _preload_content=False,
            )
            chunks = self._resp.stream(CHUNK, decode_content=True)
            for data, when in skip(log_pieces(chunks), skipped):
                if self._stop.is_set():
                    break
                self.out.put(LogBytes("stdout", offset, data, at=_time(when), source=self.pod))
                offset += len(data)
        except ApiException as exc:
            error = f"cannot follow the log of pod {self.pod}: {exc.reason or exc.status}"
        except Exception as exc:  # the connection dropped, or was shut by `stop`
            if self._resp is None:
                error = f"cannot follow the log of pod {self.pod}: {exc}"
        finally:
            if self._resp is not None:
                with contextlib.suppress(Exception):
                    self._resp.release_conn()
            self.out.put(Ended(self.pod, error))


def started_pods(pods: Iterable[Any]) -> list[Any]:
    """The pods whose main container has started (they have a log), oldest first."""
    found = []
    for pod in pods:
        main = _main(pod)
        state = main.state if main is not None else None
        if state is not None and (state.running is not None or state.terminated is not None):
            found.append(pod)
    return sorted(
        found, key=lambda p: (p.metadata.creation_timestamp or datetime.min, p.metadata.name)
    )


def finished(pod: Any) -> bool:
    """Whether the pod's command has ended: its log is complete."""
    main = _main(pod)
    return bool(main is not None and main.state is not None and main.state.terminated)


def _main(pod: Any) -> Any | None:
    statuses = pod.status.container_statuses if pod.status else None
    return next((c for c in statuses or [] if c.name == MAIN), None)


def target(
    pods: list[Any], starts: dict[str, int], offset: int, done: Iterable[str] = ()
) -> tuple[Any, int] | None:
    """The pod whose log continues the run's log at local `offset`, and where its log
    begins in the file: the last pod the file has bytes of (`starts`), unless `done`
    (its log is all there), then the next pod to start after it, from `offset`."""
    done = set(done)
    names = [p.metadata.name for p in pods]
    later = [p for p in pods if p.metadata.name not in starts]
    if starts:
        name, begin = max(starts.items(), key=lambda item: item[1])
        if name in names:
            if name not in done:
                return pods[names.index(name)], begin
            later = [p for p in pods[names.index(name) + 1 :] if p.metadata.name not in starts]
    later = [p for p in later if p.metadata.name not in done]
    return (later[0], offset) if later else None


def legacy_starts(run_dir: Path) -> dict[str, int]:
    """Where each pod's log begins in the run's log, as a qwex before the observed
    contract recorded it (`k8s-logs.json`) for a run it was copying: a run started by it
    ends with its log whole."""
    try:
        state = json.loads((run_dir / LEGACY_STATE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict):
        return {}
    starts = {}
    for key, value in state.items():
        if str(key).startswith(LEGACY_START) and isinstance(value, int):
            starts[str(key).removeprefix(LEGACY_START)] = value
    return starts
