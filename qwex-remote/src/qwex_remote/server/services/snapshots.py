"""Project snapshots: look one up, or store an upload (digest, size and archive checked)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from qwex_remote.server.errors import ApiError
from qwex_remote.server.limits import snapshot_too_large
from qwex_remote.server.schemas import SnapshotInfo
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.state import ServerState


def get(state: ServerState, sha256: str) -> SnapshotInfo:
    """The snapshot, or a 404 naming it."""
    snapshot = state.store.snapshot(sha256)
    if snapshot is None:
        raise ApiError(404, "not_found", f"no snapshot {sha256} on this server")
    return SnapshotInfo(sha256=sha256, size=snapshot.size)


async def put(
    state: ServerState, sha256: str, declared: int | None, body: AsyncIterable[bytes]
) -> tuple[SnapshotInfo, bool]:
    """Store the tar.gz `body` (`declared` bytes long, if the client said) as snapshot
    `sha256`, and True; or the one the server has already, and False.

    Refused when it is over the size limit (413, before reading it when `declared` is
    over), its sha256 is another (400), or it is no tar.gz or unpacks over the limits
    (422, 413). Nothing is kept of a refused upload."""
    existing = await run_in_threadpool(state.store.snapshot, sha256)
    if existing is not None:
        return SnapshotInfo(sha256=sha256, size=existing.size), False
    limit = state.settings.max_snapshot_bytes
    if declared is not None and declared > limit:
        raise ApiError(413, "too_large", _too_large(declared, limit))
    folder = state.data_dir / "snapshots"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as fh:
            async for part in body:
                size += len(part)
                if size > limit:
                    raise ApiError(413, "too_large", _too_large(size, limit))
                digest.update(part)
                fh.write(part)
        if digest.hexdigest() != sha256:
            raise ApiError(
                400,
                "snapshot_digest_mismatch",
                f"the body's sha256 is {digest.hexdigest()}, not {sha256}",
            )
        await run_in_threadpool(_check_archive, tmp, state.settings)
        final = folder / f"{sha256}.tar.gz"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    await run_in_threadpool(state.store.add_snapshot, sha256, size, str(final))
    return SnapshotInfo(sha256=sha256, size=size), True


def _too_large(size: int, limit: int) -> str:
    return (
        f"the snapshot is {'over ' if size > limit else ''}{size} bytes, over the server's "
        f"limit of {limit} bytes (server.max_snapshot_bytes); exclude large files with "
        ".qwexignore"
    )


def _check_archive(path: str, settings: ServerSettings) -> None:
    """A tar.gz whose headers add up to no more than the unpacked limits (read header by
    header: a bomb is refused at the member that takes it over, before its data), none of
    them huge (a pax header is read whole)."""
    import tarfile
    import zlib

    from qwex_core.agent.unpack import UnpackedTooLarge, members_within, open_archive

    try:
        with open_archive(path) as tar:
            members_within(tar, settings.unpacked_limit(), settings.max_snapshot_files)
    except UnpackedTooLarge as exc:
        if exc.what == "header":
            raise ApiError(422, "snapshot_invalid", str(exc)) from None
        raise ApiError(413, "too_large", snapshot_too_large(exc)) from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ApiError(422, "snapshot_invalid", f"the snapshot is not a tar.gz: {exc}") from None
