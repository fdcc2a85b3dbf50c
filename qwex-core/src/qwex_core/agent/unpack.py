"""Unpack a project snapshot into the working directory, safely.

The archive comes from outside the container (a ConfigMap, an upload), so it is
extracted with tarfile's `data` filter: no absolute paths, nothing outside the
directory, no links leaving it, no device files, no set-uid bits, no chown.
Pythons older than 3.11.4 (Debian 12's 3.11.2) lack the filter; there the same
rules are checked here, member by member, against what is already on disk.
Files get the time of unpacking, not the snapshot's zero (tools such as zip refuse
times before 1980, and build tools see the tree as new).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tarfile
import time
import zlib
from collections.abc import Iterator
from typing import IO, cast

MAX_HEADER = 1 << 20
"""Largest single read tarfile may make: a pax header or a GNU long name is read into
memory whole, so a small upload could otherwise hold a header of a gigabyte of zeros.
Data is read in 16 KiB pieces and plain headers in 512 bytes; qwex's own snapshots have
no header near this size."""


class SnapshotError(Exception):
    """The snapshot cannot be unpacked; the message says which file and why."""


class UnpackedTooLarge(SnapshotError):
    """The snapshot would unpack to more than `limit` bytes or files (`what`)."""

    def __init__(self, what: str, limit: int) -> None:
        if what == "header":
            message = f"the snapshot has a tar header (pax or long name) over {limit} bytes"
        else:
            noun = "bytes" if what == "bytes" else "files"
            message = f"the snapshot unpacks to more than {limit} {noun}"
        super().__init__(message)
        self.what = what
        self.limit = limit


class _Capped:
    """The decompressed stream, refusing any single read over `MAX_HEADER`."""

    def __init__(self, raw: gzip.GzipFile) -> None:
        self.raw = raw

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > MAX_HEADER:
            raise UnpackedTooLarge("header", MAX_HEADER)
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


@contextlib.contextmanager
def open_archive(archive: str) -> Iterator[tarfile.TarFile]:
    """The tar.gz `archive` open for reading, no header of it read whole past MAX_HEADER."""
    with gzip.open(archive, "rb") as raw:
        capped = cast("IO[bytes]", _Capped(raw))  # what tarfile uses of a file: read, seek, tell
        with tarfile.open(fileobj=capped, mode="r:") as tar:
            yield tar


def members_within(
    tar: tarfile.TarFile, max_bytes: int | None = None, max_files: int | None = None
) -> list[tarfile.TarInfo]:
    """The archive's members, read one header at a time: a member past `max_files`, or one
    whose size takes the total past `max_bytes`, raises `UnpackedTooLarge` before its data
    is decompressed (a small upload may unpack to gigabytes of zeros)."""
    members: list[tarfile.TarInfo] = []
    total = 0
    for member in tar:
        members.append(member)
        total += member.size
        if max_files is not None and len(members) > max_files:
            raise UnpackedTooLarge("files", max_files)
        if max_bytes is not None and total > max_bytes:
            raise UnpackedTooLarge("bytes", max_bytes)
    return members


def unpack(
    archive: str, dest: str = ".", *, max_bytes: int | None = None, max_files: int | None = None
) -> int:
    """Extract the tar.gz `archive` into `dest`; return the number of members extracted.
    Nothing is written when the archive holds more than `max_files` members or `max_bytes`
    bytes of files (`UnpackedTooLarge`)."""
    try:
        with open_archive(archive) as tar:
            members = members_within(tar, max_bytes, max_files)
            if hasattr(tarfile, "data_filter"):
                now = time.time()

                def data_now(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
                    return tarfile.data_filter(member, path).replace(mtime=now, deep=False)

                tar.extractall(dest, members=members, filter=data_now)
            else:  # pragma: no cover - exercised through extract_checked on any Python
                extract_checked(tar, members, dest)
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {archive} does not exist") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise SnapshotError(f"cannot unpack the snapshot {archive}: {exc}") from None
    return len(members)


def extract_checked(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: str) -> None:
    """What the `data` filter does, for Pythons without it."""
    root, now = os.path.realpath(dest), time.time()
    for member in members:
        name = member.name
        if os.path.isabs(name) or ".." in name.split("/"):
            raise tarfile.TarError(f"{member.name!r} would be written outside the directory")
        target = os.path.realpath(os.path.join(root, name))
        if not _inside(root, os.path.dirname(target)):
            raise tarfile.TarError(f"{member.name!r} would be written outside the directory")
        if member.issym() or member.islnk():
            base = os.path.dirname(target) if member.issym() else root
            if os.path.isabs(member.linkname) or not _inside(
                root, os.path.realpath(os.path.join(base, member.linkname))
            ):
                raise tarfile.TarError(
                    f"{member.name!r} links to {member.linkname!r}, outside the directory"
                )
        elif not (member.isfile() or member.isdir()):
            raise tarfile.TarError(f"{member.name!r} is a special file")
        mode = stat.S_IMODE(member.mode) & 0o755
        if member.isdir():
            mode |= 0o700
        elif member.isfile():
            mode = mode | 0o600 if mode & 0o100 else mode & 0o644 | 0o600
        member.mode, member.mtime = mode, now
        member.uid, member.gid, member.uname, member.gname = os.geteuid(), os.getegid(), "", ""
        tar.extract(member, root, set_attrs=not member.issym())


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
