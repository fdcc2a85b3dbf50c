"""The id index of a run store: every run id in one file, so that listing the newest runs or
finding a short id among 100,000 runs reads one file instead of listing the runs folder
(listing 100,000 entries and sorting them costs more than the rest of `qwex status`).

`.qwex/runs.index` holds a fixed-size header naming the runs folder's mtime (ns) it lists,
then the run ids, oldest first, one a line (ids are UUIDs: 36 characters). It is a copy,
never the only one: the run folders are the runs. It is believed only while the runs
folder's mtime is the one its header names (no folder added or removed since) and its lines
are ids in order; otherwise the folder is listed, and the index written again from that
listing unless the folder changed so recently (`RACY_NS`) that a change in the same tick of
the file system's clock could hide behind an unchanged mtime. Making a run folder keeps the
index in step, under the store's lock (`.qwex/runs.lock`): its id is appended and the header
moved to the folder's new mtime, when the index was in step just before and the id sorts
last. Removing a run folder leaves the index stale: the next reader lists the folder.
A lookup the index cannot answer is looked for in the folder before it is said to be none.

Standard library only: the agent makes a run folder through it when asked to run with no
run folder given.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from qwex_core.ids import uuid7

INDEX_FILE = "runs.index"
LOCK_FILE = "runs.lock"
HEADER = b"qwex-ids 1 "
HEADER_SIZE = len(HEADER) + 20 + 1
"""The header is fixed-size (`qwex-ids 1 ` and 20 digits), so it is rewritten in place."""
LINE = 37
"""A run id (36 characters) and its newline."""
SHORT_AT = 24
"""Where a short id (the last 12 digits) starts in an id."""
RACY_NS = 100_000_000
"""A runs folder changed less than this long before it is listed is not indexed: the file
system stamps mtimes with a clock of a few ms a tick, so a run folder made in the same tick
after the listing would leave the mtime unchanged and the index would miss it."""
FILE_MODE = 0o664


def _header(mtime_ns: int) -> bytes:
    return HEADER + b"%020d\n" % mtime_ns


def _paths(root: Path) -> tuple[str, str]:
    return str(root.parent / INDEX_FILE), str(root.parent / LOCK_FILE)


def _read_fresh(root: Path) -> bytes | None:
    """The index's lines of ids when it lists the runs folder as it is now, else None."""
    index, _ = _paths(root)
    try:
        mtime = os.stat(root).st_mtime_ns
        fd = os.open(index, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 22):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    body = data[HEADER_SIZE:]
    if data[:HEADER_SIZE] != _header(mtime) or len(body) % LINE:
        return None
    return body


def _listed(root: Path) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return [n for n in names if not n.startswith(".")]


def listing(root: Path) -> list[str]:
    """Every run id, newest first, from the folder itself (never the index)."""
    return sorted(_listed(root), reverse=True)


def newest_first(root: Path) -> Iterator[str]:
    """Every run id of the runs folder `root`, newest first: from the index when it is in
    step, else from a listing of the folder (which then writes the index again)."""
    body = _read_fresh(root)
    if body is not None:
        for end in range(len(body), 0, -LINE):
            yield body[end - LINE : end - 1].decode("ascii")
        return
    try:
        mtime = os.stat(root).st_mtime_ns
    except FileNotFoundError:
        return
    names = listing(root)
    if time.time_ns() - mtime > RACY_NS:
        with contextlib.suppress(OSError):
            _write(root, mtime, names)
    yield from names


def matching(root: Path, prefix: str) -> list[str] | None:
    """The ids whose full or short id (last 12 digits) starts with `prefix` (lower-case hex
    and `-`), from the index; None when the index is not in step."""
    body = _read_fresh(root)
    if body is None:
        return None
    token = prefix.encode("ascii")
    found = []
    at = body.find(token)
    while at >= 0:
        start = at - at % LINE
        offset = at - start
        if offset == 0 or (offset == SHORT_AT and len(token) <= LINE - 1 - SHORT_AT):
            found.append(body[start : start + LINE - 1].decode("ascii"))
            at = body.find(token, start + LINE)  # one match a line
        else:
            at = body.find(token, at + 1)
    return found


def _write(root: Path, mtime: int, newest_first: list[str]) -> None:
    """The index of the runs folder as it was at `mtime`, replaced atomically."""
    if any(len(n) != LINE - 1 for n in newest_first):
        return  # not run ids: left to listing
    index, _ = _paths(root)
    with locked(root) as held:
        if not held:
            return
        tmp = f"{index}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
        try:
            os.write(
                fd, _header(mtime) + "".join(f"{n}\n" for n in reversed(newest_first)).encode()
            )
        finally:
            os.close(fd)
        os.replace(tmp, index)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[bool]:
    """The store's lock held (True), or not when it cannot be taken here (False: a store
    this user may read but not write): held by whoever writes the index or adds or removes
    run folders."""
    _, lock = _paths(root)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)


def new_run_folder(
    root: Path, claim: Callable[[str], None] | None = None, mode: int = 0o775
) -> str:
    """Make the folder of a new run under `root` and return its id: a UUIDv7 whose short id
    (last 12 digits) no other run has, its folder made exclusively, under the store's lock,
    and taken into the index. `claim(run_id)` runs once the folder exists (a name to take);
    if it raises, the folder is removed and the error raised."""
    import shutil

    with locked(root) as held:
        body = _read_fresh(root) if held else None  # unlocked: the index goes stale
        names = None if body is not None else set(n[SHORT_AT:] for n in _listed(root))
        while True:
            run_id = uuid7()
            short = run_id[SHORT_AT:]
            if short in names if names is not None else matching_short(body or b"", short):
                continue  # pragma: no cover - 48 random bits
            try:
                os.mkdir(root / run_id, mode)
            except FileExistsError:  # pragma: no cover - 74 random bits
                continue
            break
        if claim is not None:
            try:
                claim(run_id)
            except BaseException:
                shutil.rmtree(root / run_id, ignore_errors=True)
                raise
        if body is not None and (not body or body[-LINE:-1].decode("ascii") < run_id):
            _append(root, run_id)
    return run_id


def matching_short(body: bytes, short: str) -> bool:
    """Whether an id of the index's `body` has the short id `short`."""
    token = short.encode("ascii")
    at = body.find(token)
    while at >= 0:
        if at % LINE == SHORT_AT:
            return True
        at = body.find(token, at + 1)
    return False


def _append(root: Path, run_id: str) -> None:
    """Add `run_id` to an index that was in step before its folder was made."""
    index, _ = _paths(root)
    try:
        fd = os.open(index, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        os.write(fd, f"{run_id}\n".encode())
        mtime = os.stat(root).st_mtime_ns
        # Appending goes to the end whatever the offset asked: the header, rewritten after
        # the id (a reader seeing the new header sees the id), goes through another open.
        header = os.open(index, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            os.pwrite(header, _header(mtime), 0)
        finally:
            os.close(header)
    finally:
        os.close(fd)
