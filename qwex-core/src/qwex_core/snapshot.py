"""Content-addressed snapshots of a project, for backends that cannot see it.

A snapshot is the project tree minus what `.gitignore` files (root and nested,
git's own matching rules through `pathspec`) and `.qwexignore` files exclude,
always minus `.git` and `.qwex`, as a tar.gz. It is deterministic: entries
sorted, times, owners and gzip header zeroed, modes reduced to 0644/0755 by the
executable bit. So an unchanged tree gives the same sha256, and a backend never
sends the same code twice. The agent unpacks it (`qwex_core.agent.unpack`).

`.qwexignore` uses the gitignore syntax and is read after `.gitignore` in the
same directory, so `!data/small.csv` there brings back a file git ignores.
Symlinks are kept as symlinks when they point inside the tree (absolute ones are
made relative) and left out when they point outside it, as `rsync --safe-links`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import pathspec

from qwex_core.errors import SnapshotTooLarge, SpecError

ALWAYS_EXCLUDED = frozenset({".git", ".qwex"})
"""Never in a snapshot, at any depth: git's store and qwex's run store."""
IGNORE_FILES = (".gitignore", ".qwexignore")
"""Read in this order in every directory; a later pattern wins."""
EXTRA_SCAN = 64 << 20
"""Once over the limit, how many more bytes to read (plus one CHUNK buffered) to name the size."""
BIGGEST = 5
CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    """A project snapshot: `data` is the tar.gz, `sha256` its digest (the snapshot's name),
    `files` the number of files and symlinks in it, `size` their total uncompressed bytes."""

    sha256: str
    data: bytes
    files: int
    size: int


@dataclass(frozen=True)
class _Entry:
    rel: str
    kind: Literal["dir", "file", "link"]
    size: int = 0
    executable: bool = False
    link: str = ""


Specs = list[tuple[str, pathspec.GitIgnoreSpec]]


def make_snapshot(project_dir: Path, *, limit: int) -> Snapshot:
    """Snapshot `project_dir`; raise `SnapshotTooLarge` when the tar.gz is over `limit` bytes."""
    root = os.path.realpath(project_dir)
    if not os.path.isdir(root):
        raise SpecError(f"cannot snapshot {project_dir}: not a directory")
    entries = sorted(_walk(root), key=lambda e: e.rel)
    files = [e for e in entries if e.kind == "file"]
    total = sum(e.size for e in files)
    count = len(files) + sum(e.kind == "link" for e in entries)
    sink = _Sink(limit)
    with contextlib.suppress(_Stop):
        _write_tar(root, entries, sink)
    if sink.data is None:
        raise _too_large(sink, limit, files, total, count)
    return Snapshot(
        sha256=hashlib.sha256(sink.data).hexdigest(), data=sink.data, files=count, size=total
    )


# -- which files -----------------------------------------------------------------


def _walk(root: str) -> list[_Entry]:
    """Every entry to keep, directories included; ignored directories are not entered."""
    found: list[_Entry] = []
    todo: list[tuple[str, Specs]] = [("", [])]
    while todo:
        rel_dir, specs = todo.pop()
        abs_dir = os.path.join(root, rel_dir)
        spec = _ignore_spec(abs_dir, rel_dir)
        if spec is not None:
            specs = [*specs, (rel_dir, spec)]
        try:
            with os.scandir(abs_dir) as listing:
                items = list(listing)
        except OSError as exc:
            raise _unreadable(rel_dir or ".", exc) from None
        for item in items:
            if item.name in ALWAYS_EXCLUDED:
                continue
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            try:
                is_link = item.is_symlink()
                is_dir = not is_link and item.is_dir(follow_symlinks=False)
                if _ignored(specs, rel, is_dir):
                    continue
                if is_link:
                    link = _inside_link(root, rel)
                    if link is not None:
                        found.append(_Entry(rel, "link", link=link))
                elif is_dir:
                    found.append(_Entry(rel, "dir"))
                    todo.append((rel, specs))
                elif item.is_file(follow_symlinks=False):
                    st = item.stat(follow_symlinks=False)
                    found.append(_Entry(rel, "file", st.st_size, bool(st.st_mode & 0o100)))
            except OSError as exc:
                raise _unreadable(rel, exc) from None
    return found


def _ignore_spec(abs_dir: str, rel_dir: str) -> pathspec.GitIgnoreSpec | None:
    lines: list[str] = []
    for name in IGNORE_FILES:
        try:
            with open(os.path.join(abs_dir, name), encoding="utf-8", errors="replace") as fh:
                lines.extend(fh.read().splitlines())
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _unreadable(f"{rel_dir}/{name}" if rel_dir else name, exc) from None
    return pathspec.GitIgnoreSpec.from_lines(lines) if lines else None


def _ignored(specs: Specs, rel: str, is_dir: bool) -> bool:
    """git's rule: the deepest ignore file with a matching pattern decides, its last match wins."""
    for base, spec in reversed(specs):
        sub = rel[len(base) + 1 :] if base else rel
        result = spec.check_file(sub + "/" if is_dir else sub)
        if result.include is not None:
            return bool(result.include)
    return False


def _inside_link(root: str, rel: str) -> str | None:
    """The target to store for the symlink `rel`, or None when it leads outside the tree."""
    path = os.path.join(root, rel)
    target = os.readlink(path)
    real = os.path.realpath(path)
    if not (real == root or real.startswith(root + os.sep)):
        return None
    if os.path.isabs(target):
        return os.path.relpath(real, os.path.dirname(path))
    return target


def _unreadable(rel: str, exc: OSError) -> SpecError:
    return SpecError(
        f"cannot read {rel} for the project snapshot: {exc.strerror or exc}; "
        "make it readable or exclude it in .qwexignore"
    )


# -- the archive -----------------------------------------------------------------


class _Stop(Exception):
    """Over the limit and counted far enough: stop compressing."""


class _Sink:
    """Keeps the compressed bytes while under the limit, then only counts them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buffer: io.BytesIO | None = io.BytesIO()
        self.compressed = 0
        self.read_after_limit = 0
        self.finished = False

    def write(self, data: bytes) -> int:
        self.compressed += len(data)
        if self.buffer is not None:
            if self.compressed <= self.limit:
                self.buffer.write(data)
            else:
                self.buffer = None
        return len(data)

    def flush(self) -> None:
        pass

    def reading(self, n: int) -> None:
        if self.buffer is None:
            self.read_after_limit += n
            if self.read_after_limit > EXTRA_SCAN:
                raise _Stop

    @property
    def data(self) -> bytes | None:
        return self.buffer.getvalue() if self.buffer is not None and self.finished else None


class _Reader:
    """A file read through the sink, so that compressing a huge tree can stop early."""

    def __init__(self, fh: IO[bytes], sink: _Sink) -> None:
        self.fh = fh
        self.sink = sink

    def read(self, n: int = -1) -> bytes:
        self.sink.reading(n if n > 0 else 0)
        return self.fh.read(n)


def _write_tar(root: str, entries: list[_Entry], sink: _Sink) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=sink, mtime=0) as gz,
        io.BufferedWriter(gz, buffer_size=CHUNK) as buffered,  # zlib likes big writes
        tarfile.open(fileobj=buffered, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for entry in entries:
            info = tarfile.TarInfo(entry.rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif entry.kind == "link":
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.link
                tar.addfile(info)
            else:
                info.size, info.mode = entry.size, 0o755 if entry.executable else 0o644
                try:
                    with open(os.path.join(root, entry.rel), "rb") as fh:
                        tar.addfile(info, _Reader(fh, sink))
                except OSError as exc:
                    if "unexpected end of data" in str(exc):
                        raise SpecError(
                            f"{entry.rel} changed while the project snapshot was taken; try again"
                        ) from None
                    raise _unreadable(entry.rel, exc) from None
    sink.finished = True


def _too_large(
    sink: _Sink, limit: int, files: list[_Entry], total: int, count: int
) -> SnapshotTooLarge:
    exact = sink.finished
    biggest = [(e.rel, e.size) for e in sorted(files, key=lambda e: (-e.size, e.rel))[:BIGGEST]]
    size = f"{_human(sink.compressed)}" if exact else f"more than {_human(sink.compressed)}"
    listed = ", ".join(f"{rel} ({_human(n)})" for rel, n in biggest)
    return SnapshotTooLarge(
        f"the project snapshot is {size} compressed ({count} files, {_human(total)} "
        f"uncompressed), over the limit of {_human(limit)}. Biggest files: {listed}. "
        "To fix: exclude what the run does not need in .qwexignore (gitignore syntax), "
        "use an existing PVC as the working directory, or put the code in the image.",
        size=sink.compressed,
        limit=limit,
        biggest=biggest,
        size_is_exact=exact,
    )


def _human(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"
