"""The run store: one folder per run under `<project>/.qwex/runs/<uuid7>/`.

Ids are UUIDv7, so listing the folder names in reverse order lists runs
newest first without reading any record. Every record write is atomic
(see `qwex_core.agent.record`), and ids are created with an exclusive
`mkdir`, so many shells can start runs at once.

A run's short id is the last 12 hex digits of its id (the UUID's random tail:
the first digits are a timestamp shared by runs made close together), checked
unique when the run is created. A run's name is an entry `.qwex/names/<name>`
holding its id, created exclusively, so a name belongs to one run at a time and
resolving it reads one small file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core import run_index
from qwex_core.agent.record import (
    RUN_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    UNREADABLE,
    write_record,
)
from qwex_core.errors import QwexError, RunNotFound
from qwex_core.paths import runs_dir, store_announcement

if TYPE_CHECKING:
    # pydantic is imported only where a model is built: listing and resolving ids do without.
    from qwex_core.models import JobSpec, Run


SHORT_ID_LENGTH = 12
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
"""A run name: letters, digits, `_`, `.`, `-`, starting with a letter or digit (as Docker)."""
ID_LIKE = re.compile(r"[0-9a-fA-F-]+")
"""What a run id, a short id or a prefix of either may look like: hex digits and `-`. No name
looks like this, so that a name can never be read as another run's id."""
DIR_MODE = 0o775
FILE_MODE = 0o664
"""Modes of what the store creates: never world-writable, whatever the umask (which may still
take the group's write bit away, as the usual 022 does)."""
CREATING_GRACE = 60.0
"""Seconds a run folder may have no `run.json` yet (it is being created) before `qwex list`
shows it as unreadable."""


def short_id(run_id: str) -> str:
    """The id users see: the random tail of the UUID, unique in its store."""
    return run_id[-SHORT_ID_LENGTH:]


def check_name(name: str) -> str:
    """`name` when it can name a run, else a `QwexError` saying what a name may hold."""
    if not NAME_PATTERN.fullmatch(name):
        raise QwexError(
            f"{name!r} cannot name a run: use up to 63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if ID_LIKE.fullmatch(name):
        raise QwexError(
            f"{name!r} cannot name a run: made only of hex digits (and '-'), it could be read "
            "as a run id; add a letter from g to z, '_' or '.' (e.g. 'run-" + name + "')"
        )
    return name


LOCK_FILE = "observed.lock"
"""In a run folder: the lock of `record_lock`."""


@contextlib.contextmanager
def record_lock(run_dir: os.PathLike[str] | str) -> Iterator[None]:
    """The run's lock: one qwex process at a time reads, changes and writes the record of
    a run whose agent cannot (and copies its log). Hold it around every read-modify-write."""
    fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class RunStore:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.root = runs_dir(project_dir)
        self.names = self.root.parent / "names"

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def log_path(self, run_id: str, stream: str) -> Path:
        return self.run_dir(run_id) / (STDOUT_FILE if stream == "stdout" else STDERR_FILE)

    def create(self, spec: JobSpec) -> Run:
        """Make a new pending run for `spec`, with an empty log of each stream. Its name, if
        it has one, is claimed first: a name another run holds is an error, and no run."""
        if not self.root.is_dir():
            if not self.project_dir.is_dir():  # a wrong project: never made here
                raise QwexError(f"the project folder {self.project_dir} does not exist")
            announcement = (
                None if self.root.parent.exists() else store_announcement(self.project_dir)
            )
            self.root.parent.mkdir(DIR_MODE, exist_ok=True)
            self.root.mkdir(DIR_MODE, exist_ok=True)
            if announcement:
                sys.stderr.write(f"qwex: {announcement}\n")
        claim = None if not spec.name else lambda run_id: self.claim_name(str(spec.name), run_id)
        run_id = run_index.new_run_folder(self.root, claim, DIR_MODE)
        from qwex_core.agent.record import now_iso
        from qwex_core.models import Run

        now = now_iso()
        run = Run.model_validate(
            {
                "id": run_id,
                "short_id": short_id(run_id),
                "backend": spec.backend,
                "spec": spec,
                "created_at": now,
                "history": [{"status": "pending", "at": now}],
            }
        )
        for name in (STDOUT_FILE, STDERR_FILE):
            (self.root / run_id / name).touch(FILE_MODE)
        self.save(run)
        return run

    def name_owner(self, name: str) -> str | None:
        """The id of the run named `name`, or None (an entry left by a deleted run is none)."""
        if not NAME_PATTERN.fullmatch(name):
            return None
        try:
            run_id = (self.names / name).read_text().strip()
        except OSError:
            return None
        return run_id if run_id and (self.root / run_id).is_dir() else None

    def claim_name(self, name: str, run_id: str) -> None:
        """Give `name` to `run_id`, atomically: an error when another run holds it."""
        check_name(name)
        self.names.mkdir(DIR_MODE, parents=True, exist_ok=True)
        path = self.names / name
        for _ in range(3):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    holder = path.read_text().strip()
                except FileNotFoundError:
                    continue
                if not holder or (self.root / holder).is_dir():  # empty: being claimed now
                    shown = f"run {short_id(holder)}" if holder else "a run being started"
                    raise QwexError(
                        f"the name {name!r} is taken by {shown}; choose another "
                        f"or remove that run (`qwex rm {name}`)"
                    ) from None
                path.unlink(missing_ok=True)  # left by a run deleted by hand: take it over
                continue
            try:
                os.write(fd, run_id.encode())
            finally:
                os.close(fd)
            return
        raise QwexError(f"could not claim the name {name!r} in {self.names}; try again")

    def release_name(self, name: str, run_id: str) -> None:
        """Drop the name entry `name` if it still points at `run_id`."""
        path = self.names / name
        try:
            if path.read_text().strip() == run_id:
                path.unlink()
        except OSError:
            pass

    def delete(self, run_id: str, name: str | None = None) -> int:
        """Remove a run's folder and its name entry; return the bytes freed."""
        run_dir = self.run_dir(run_id)
        size = dir_size(run_dir)
        if name:
            self.release_name(name, run_id)
        elif self.names.is_dir():  # a run whose record cannot be read: find its name entry
            for entry in os.listdir(self.names):
                self.release_name(entry, run_id)
        import shutil  # (not at the top: every command imports the store, few delete)

        with run_index.locked(self.root):  # no run added meanwhile: the index goes stale
            shutil.rmtree(run_dir, ignore_errors=True)
        return size

    def save(self, run: Run, *, durable: bool = False) -> None:
        write_record(self.run_dir(run.id), run.model_dump(mode="json"), durable=durable)

    def record_end(self, run: Run, status: str, reason: str) -> Run:
        """Write the final state that the run's agent could not write, and return it.

        The one write path for an end from outside the agent. On a run that is already
        final with `status`, it refines the reason instead (`OOMKilled` seen by the
        container runtime after the agent recorded a SIGKILL)."""
        from qwex_core.agent.record import transition
        from qwex_core.models import Run

        record = run.model_dump(mode="json")
        if run.is_final and run.status == status:
            record["reason"] = reason
            if record.get("history"):
                record["history"][-1]["reason"] = reason
        else:
            transition(record, str(status), reason)
        final = Run.model_validate(record)
        self.save(final, durable=True)
        return final

    def load(self, run_id: str) -> Run:
        """The record of an exact run id."""
        from pydantic import ValidationError

        from qwex_core.models import Run

        data = self.read(run_id)
        try:
            return Run.model_validate(data)
        except ValidationError as exc:
            raise QwexError(
                f"the record {self.run_dir(run_id) / RUN_FILE} is damaged: {exc}"
            ) from None

    def read(self, run_id: str) -> dict[str, Any]:
        """The raw record of an exact run id; a missing or unreadable one is an error naming
        the file."""
        path = self.run_dir(run_id) / RUN_FILE
        try:
            return _load_record(str(path), run_id)
        except FileNotFoundError:
            if not self.run_dir(run_id).is_dir():
                raise RunNotFound(f"no run {run_id} in {self.root}") from None
            raise QwexError(
                f"the record {path} is missing (the run is being created, or its folder "
                f"was damaged; `qwex rm -f {short_id(run_id)}` removes it)"
            ) from None
        except OSError as exc:
            raise QwexError(f"cannot read the record {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise QwexError(
                f"the record {path} is damaged ({exc}); "
                f"`qwex rm -f {short_id(run_id)}` removes the run"
            ) from None

    def resolve(self, token: str) -> str:
        """The full id of the one run `token` names: a full id, a run name, or a unique
        prefix of a full or short id. A token that names one run and is an id prefix of
        another (a hex name from an older qwex) is an error naming both: never a guess."""
        token = token.strip()
        if not token:
            raise RunNotFound(
                "give a run id, short id or name (or a unique prefix of an id); "
                "`qwex list` shows them"
            )
        if os.sep not in token and (self.root / token).is_dir() and not token.startswith("."):
            return token
        owner = self.name_owner(token)
        prefix = token.lower()
        matches = []
        if ID_LIKE.fullmatch(token):
            indexed = run_index.matching(self.root, prefix)
            matches = (
                indexed
                if indexed  # none: the folder is the truth, an index can only miss runs
                else [
                    name
                    for name in run_index.listing(self.root)
                    if name.startswith(prefix) or short_id(name).startswith(prefix)
                ]
            )
        if owner is not None:
            others = [m for m in matches if m != owner]
            if others:
                shown = ", ".join(short_id(m) for m in sorted(others)[:5])
                raise RunNotFound(
                    f"{token!r} is ambiguous: it is the name of run {short_id(owner)} and a "
                    f"prefix of the id of {len(others)} other run{'s' if len(others) > 1 else ''} "
                    f"({shown}); give more of the id of the one you mean (`qwex list --no-trunc`)"
                )
            return owner
        if not matches:
            raise RunNotFound(
                f"no run matches {token!r} (an id, short id or name) in {self.root}; "
                "`qwex list` shows the runs"
            )
        if len(matches) > 1:
            shown = ", ".join(short_id(m) for m in sorted(matches)[:5])
            raise RunNotFound(
                f"{token!r} matches {len(matches)} runs ({shown}...); give more of the id"
            )
        return matches[0]

    def ids(self) -> list[str]:
        """Every run id, newest first."""
        return list(run_index.newest_first(self.root))

    def iter_records(
        self, *, backends: set[str] | None = None, unreadable: bool = False, rows: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Raw records, newest first, as stored. `qwex list` reads thousands of these, so no
        model is built here. A folder whose record cannot be read is skipped, or with
        `unreadable`, given as `{"id", "short_id", "status": "unreadable", "reason"}` (the
        reason names the file); one still being created (no record yet, a few seconds old)
        is skipped either way. With `rows`, a final run's record may come as the fields
        `qwex list` shows and filters on, from the cache of them (see `row_cache`)."""
        from qwex_core.row_cache import RowCache

        root = str(self.root)
        cache = RowCache(self.root) if rows else None
        complete = False
        try:
            for run_id in run_index.newest_first(self.root):
                path = f"{root}/{run_id}/{RUN_FILE}"
                identity = None
                if cache is not None:
                    try:  # before the read: a record replaced after this is read again later
                        st = os.lstat(path)
                    except OSError:
                        pass
                    else:
                        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
                        cached = cache.lookup(run_id, identity)
                        if cached is not None:
                            if backends is None or cached.get("backend") in backends:
                                yield cached
                            continue
                problem = None
                try:
                    data = _load_record(path, run_id)
                except FileNotFoundError:
                    if not unreadable or _younger_than(f"{root}/{run_id}", CREATING_GRACE):
                        continue
                    problem = "missing"
                except OSError as exc:
                    problem = exc.strerror or str(exc)
                except ValueError as exc:
                    problem = str(exc)
                if problem is not None:
                    if unreadable and backends is None:
                        yield unreadable_record(run_id, f"{path}: {problem}")
                    continue
                if cache is not None and identity is not None:
                    cache.read(run_id, identity, data)
                if backends is None or data.get("backend") in backends:
                    yield data
            complete = True
        finally:
            if cache is not None:
                cache.save(complete)


def unreadable_record(run_id: str, reason: str) -> dict[str, Any]:
    """What `qwex list` shows for a run whose record cannot be read."""
    return {"id": run_id, "short_id": short_id(run_id), "status": UNREADABLE, "reason": reason}


def dir_size(path: Path) -> int:
    """The bytes the files under `path` take (apparent size)."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _younger_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.stat(path).st_mtime < seconds
    except OSError:
        return True


def _load_record(path: str, run_id: str) -> dict[str, Any]:
    """The record of run `run_id` at `path`. OSError (FileNotFoundError: none yet) when it
    cannot be read, ValueError saying what is wrong when it is not that run's record: what
    `qwex list` shows of a record (its id, status, backend, command) is checked here, so a
    damaged one is listed as unreadable, never under a wrong id."""
    try:
        data = json.loads(_read_small(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("id") != run_id:
        raise ValueError(f"its id is {data.get('id')!r}, not the folder's {run_id!r}")
    for key in ("status", "backend"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"its {key} is {data.get(key)!r}, not a string")
    spec = data.get("spec")
    command = spec.get("command") if isinstance(spec, dict) else None
    if not (isinstance(command, list) and command and all(isinstance(a, str) for a in command)):
        raise ValueError("its spec.command is not a list of strings")
    return data


def _read_small(path: str) -> bytes:
    """A whole small file, with plain system calls (several times faster than `open` in a loop)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # a job's planted link is not a record
    try:
        first = os.read(fd, 1 << 16)
        if len(first) < 1 << 16:  # a regular file read short: its end (one call, not two)
            return first
        chunks = [first]
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
