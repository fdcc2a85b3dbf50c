"""The run store: one folder per run under `<project>/.qwex/runs/<uuid7>/`.

Ids are UUIDv7, so listing the folder names in reverse order lists runs
newest first without reading any record. Every record write is atomic
(see `qwex_core.agent.record`), and ids are created with an exclusive
`mkdir`, so many shells can start runs at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import RUN_FILE, STDERR_FILE, STDOUT_FILE, read_record, write_record
from qwex_core.errors import QwexError, RunNotFound
from qwex_core.ids import uuid7
from qwex_core.paths import runs_dir

if TYPE_CHECKING:
    # pydantic is imported only where a model is built: listing and resolving ids do without.
    from qwex_core.models import JobSpec, Run


class RunStore:
    def __init__(self, project_dir: Path) -> None:
        self.project_dir = project_dir
        self.root = runs_dir(project_dir)

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def log_path(self, run_id: str, stream: str) -> Path:
        return self.run_dir(run_id) / (STDOUT_FILE if stream == "stdout" else STDERR_FILE)

    def create(self, spec: JobSpec) -> Run:
        """Make a new pending run for `spec`, with an empty log of each stream."""
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = uuid7()
            try:
                (self.root / run_id).mkdir()
                break
            except FileExistsError:  # pragma: no cover - 74 random bits
                continue
        from qwex_core.agent.record import now_iso
        from qwex_core.models import Run

        now = now_iso()
        run = Run.model_validate(
            {
                "id": run_id,
                "backend": spec.backend,
                "spec": spec,
                "created_at": now,
                "history": [{"status": "pending", "at": now}],
            }
        )
        for name in (STDOUT_FILE, STDERR_FILE):
            (self.root / run_id / name).touch()
        self.save(run)
        return run

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

        data = read_record(self.run_dir(run_id))
        if data is None:
            raise RunNotFound(f"no run {run_id} in {self.root}")
        try:
            return Run.model_validate(data)
        except ValidationError as exc:
            raise QwexError(
                f"the record {self.run_dir(run_id) / RUN_FILE} is damaged: {exc}"
            ) from None

    def resolve(self, prefix: str) -> str:
        """The full id of the one run whose id starts with `prefix`."""
        prefix = prefix.strip().lower()
        if not prefix:
            raise RunNotFound("give a run id (or a unique prefix of one); `qwex list` shows them")
        try:
            matches = [name for name in os.listdir(self.root) if name.startswith(prefix)]
        except FileNotFoundError:
            matches = []
        if not matches:
            raise RunNotFound(
                f"no run matches {prefix!r} in {self.root}; `qwex list` shows the runs"
            )
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5])
            raise RunNotFound(
                f"{prefix!r} matches {len(matches)} runs ({shown}...); give more of the id"
            )
        return matches[0]

    def ids(self) -> list[str]:
        """Every run id, newest first."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if not n.startswith(".")), reverse=True)

    def iter_records(self, *, backends: set[str] | None = None) -> Iterator[dict[str, Any]]:
        """Raw records, newest first, as stored. `qwex list` reads thousands of these, so no
        model is built here; folders without a readable record yet are skipped."""
        root = str(self.root)
        for run_id in self.ids():
            try:
                data = json.loads(_read_small(f"{root}/{run_id}/{RUN_FILE}"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and (backends is None or data.get("backend") in backends):
                yield data


def _read_small(path: str) -> bytes:
    """A whole small file, with plain system calls (several times faster than `open` in a loop)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
