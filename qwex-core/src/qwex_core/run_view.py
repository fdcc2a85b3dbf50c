"""What the CLI shows of a run, readable from a final record without building the `Run` model.

Building the pydantic models (and pydantic's scan of every installed distribution for its
plugins) costs more than the rest of `qwex status` together. A final run's record no longer
changes, so what `status`, `logs`, `cancel` and `wait` show of it is read straight from
`run.json`: each field shown is checked to be in the form qwex writes it, which the model
reads to the same value. A record with any shown field in another form (hand-edited,
damaged, written by another program) gives None here, and the caller takes the model's
path, which validates the whole record and names what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import FINAL_STATUSES

if TYPE_CHECKING:
    from qwex_core.models import Run

ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
"""A time as qwex writes it (`now_iso`, or the model's JSON): read alike by
`datetime.fromisoformat` and by pydantic."""


@dataclass(frozen=True)
class RunView:
    """The fields of a run the CLI prints, as the model gives them."""

    id: str
    backend: str
    status: str
    reason: str | None
    name: str | None
    command: list[str]
    image: str | None
    exit_code: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    backend_data: dict[str, Any]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def of(cls, run: Run) -> RunView:
        """The view of a validated record."""
        return cls(
            id=run.id,
            backend=run.backend,
            status=run.status.value,
            reason=run.reason,
            name=run.spec.name,
            command=list(run.spec.command),
            image=run.spec.container.image,
            exit_code=run.exit_code,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            backend_data=run.backend_data,
        )


def final_view(record: dict[str, Any]) -> RunView | None:
    """The view of a final record whose every shown field is in the form qwex writes, else
    None (not final yet, or something for the model to judge)."""
    status = record.get("status")
    spec = record.get("spec")
    if status not in FINAL_STATUSES or not isinstance(spec, dict):
        return None
    container = spec.get("container", {})
    command = spec.get("command")
    backend_data = record.get("backend_data", {})
    if not (
        isinstance(container, dict)
        and isinstance(command, list)
        and command
        and all(isinstance(arg, str) for arg in command)
        and command[0].strip()
        and isinstance(backend_data, dict)
        and all(isinstance(key, str) for key in backend_data)
    ):
        return None
    texts = [record.get(k) for k in ("id", "backend")]
    optional = [record.get("reason"), spec.get("name"), container.get("image")]
    if not all(isinstance(t, str) for t in texts) or not all(
        t is None or isinstance(t, str) for t in optional
    ):
        return None
    exit_code = record.get("exit_code")
    if exit_code is not None and type(exit_code) is not int:
        return None
    times = [record.get(k) for k in ("created_at", "started_at", "finished_at")]
    if times[0] is None or not all(
        t is None or (isinstance(t, str) and ISO_TIME.fullmatch(t)) for t in times
    ):
        return None
    created, started, finished = (None if t is None else datetime.fromisoformat(t) for t in times)
    assert created is not None
    return RunView(
        id=str(texts[0]),
        backend=str(texts[1]),
        status=str(status),
        reason=optional[0],
        name=optional[1],
        command=command,
        image=optional[2],
        exit_code=exit_code,
        created_at=created,
        started_at=started,
        finished_at=finished,
        backend_data=backend_data,
    )
