"""Backends whose agent runs far away: they observe, core writes the record.

A local or Docker agent writes the run's record itself (the run folder is on its
machine). A Kubernetes pod, a server's job, a Slurm step cannot: their agent writes
where the far side keeps it. Such a backend subclasses `ObservedRunner` and only
answers two questions: what does the far side show of the run (`observe`), and which
log bytes does it hold from an offset on (`read_log`). Core does the rest, the same way
for every such backend:

- the log is copied by byte offset into the run's own log files, and all of it before an
  end is recorded. The offset is the local file's size (only the copy writes it), so a
  copy cut short anywhere resumes exactly; under the run's lock, two qwex processes
  following one run copy each byte once;
- status changes and the end are written through `RunStore` under the run's lock (no
  update lost between two processes), timed as the far side saw them;
- `lost`, a start that never came and a cancel the far side ignored are decided by
  `lifecycle.judge`, as for every backend. A run the far side says is queued is waiting,
  not unstarted: `start_timeout` does not run out under it;
- a far side that can push its log as it is written (`follow_log`) is followed by one
  thread per run in a process (`qwex_core.pushed`), which wakes whoever waits on the run
  (`wait_for_change`) at each new byte.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qwex_core.agent.record import FINAL_STATUSES, backdate, transition
from qwex_core.lifecycle import Action, CancelRequest, Probe, Seen
from qwex_core.logs import STREAMS
from qwex_core.pushed import LogBytes, LogCopy, Pusher, record_lock
from qwex_core.runners.base import Runner

if TYPE_CHECKING:
    from qwex_core.models import Run

__all__ = ["LogBytes", "Observation", "ObservedRunner", "record_lock"]

MAX_READS = 64
"""Most `read_log` calls per stream in one copy: a huge backlog is copied over several looks."""


@dataclass(frozen=True)
class Observation:
    """What the far side shows of a run, as a backend reports it to core."""

    seen: Seen
    """What is there: nothing yet, starting, alive, exited, or gone without a trace."""
    what: str = "the agent"
    """How reasons name it: "its pod p-1", "job 42 on the server"."""
    queued: str | None = None
    """The scheduler's words while the run waits in a queue (status `queued`)."""
    status: str | None = None
    """The final status the far side recorded (`succeeded`, `failed`, `cancelled`,
    `lost`), when `seen` is `EXITED` and it recorded one; None when it exited without."""
    reason: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    started_at: datetime | None = None
    """When the command started, by the far side's clock."""
    finished_at: datetime | None = None
    """When it ended, by the far side's clock."""
    oom: bool = False
    """The far side's runtime killed it for memory (`seen` is `EXITED`, no status)."""
    listed: bool = False
    """Answered from a listing of many runs (`prefetch`): core then leaves a live run's log
    for a look at that run alone (an end's log is always copied whole first)."""
    data: Mapping[str, Any] | None = None
    """Keys to keep in the record's `backend_data` (the attempts a scheduler made), written
    by core under the run's lock when they differ from what the record holds."""


class ObservedRunner(Runner):
    """Base of a backend whose agent cannot write the host's record (see the module).

    Implement `start`, `signal`, `observe` and `read_log` (and `follow_log` when the far
    side can push); core's `refresh` does the rest. `probe` is derived from `observe`, for
    the parts of core that ask it."""

    streams: tuple[str, ...] = STREAMS
    """The log streams the far side keeps apart (one merged stream: `("stdout",)`). Add
    `"index"` first when the far side keeps the agent's write-order index (`output.idx`):
    it is copied like a stream; without it, core indexes each copied piece itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pushers: dict[str, Pusher] = {}
        self._pushers_lock = threading.Lock()

    def observe(self, run: Run) -> Observation | None:
        """What the far side shows of `run` now; None when it cannot be asked now (the
        record then stands)."""
        raise NotImplementedError

    def read_log(self, run: Run, stream: str, offset: int) -> bytes | Sequence[LogBytes]:
        """The bytes of `stream` the far side holds from byte `offset` on (at most as
        many as one answer carries: core asks again from the new offset), b"" when there
        are none yet. A far side that knows when each piece was written returns them as
        `LogBytes` with `at` set (core indexes them with those times). Raise
        `BackendError` when it cannot be read now."""
        raise NotImplementedError

    def follow_log(self, run: Run, offsets: Mapping[str, int]) -> Iterator[LogBytes | None] | None:
        """Optional push: the far side's log bytes as they are written, from `offsets`
        (each stream's bytes copied so far), as `LogBytes`; `None` items when the run may
        have changed (its end came: core looks). End the iterator when the far side's
        stream ends (core follows again while the run lives, from what was copied); raise
        `BackendError` when it cannot be followed now (core tries again after a pause).
        Default None: the far side cannot push, and core copies on each look."""
        return None

    def probe(self, run: Run) -> Probe | None:
        seen = self.observe(run)
        return None if seen is None else _probe(seen)

    def refresh(self, run: Run) -> Run:
        from qwex_core.errors import BackendError

        current = self.store.load(run.id)
        if current.is_final or not self._due(run.id):
            return current
        pusher = self._pushers.get(run.id)
        if pusher is not None and pusher.problem:
            raise BackendError(pusher.problem)
        seen = self.observe(current)
        if seen is None:
            return current
        with self._locked(run.id):
            if not seen.listed or seen.seen not in (Seen.ALIVE, Seen.STARTING, Seen.NOTHING):
                self.copy_logs(current)
            return self._apply(run.id, seen, CancelRequest.of(self.store.run_dir(run.id)))

    def copy_logs(self, run: Run) -> None:
        """Append what the far side logged since the last copy to the run's log files.
        Call under `_locked` (refresh does)."""
        from qwex_core.errors import BackendError

        with LogCopy(self.store.run_dir(run.id), self.streams) as copy:
            for stream in copy.streams:
                for _ in range(MAX_READS):
                    offset = copy.size(stream)
                    try:
                        got = self.read_log(run, stream, offset)
                    except BackendError:
                        break
                    pieces = [LogBytes(stream, offset, got)] if isinstance(got, bytes) else got
                    if not any(p.data for p in pieces):
                        break
                    if not all(copy.append(p) for p in pieces):
                        break  # a piece past the copy's end: the far side is asked again later

    # -- following a far side that pushes --------------------------------------------

    def wait_for_change(self, run: Run, seconds: float) -> None:
        """Someone follows the run: its pushed log is followed from the first wait on (not
        from `start`: a detached run's starter returns at once and follows nothing)."""
        pusher = None if run.is_final else self._push(run)
        if pusher is None:
            time.sleep(seconds)
            return
        pusher.changed.wait(seconds)
        pusher.changed.clear()

    def cleanup(self, run: Run) -> None:
        with self._pushers_lock:
            pusher = self._pushers.pop(run.id, None)
        if pusher is not None:
            pusher.stop()

    def _push(self, run: Run) -> Pusher | None:
        """This process's follower of `run`'s pushed log, started when the far side pushes."""
        with self._pushers_lock:
            pusher = self._pushers.get(run.id)
            if pusher is not None and pusher.alive:
                return pusher
            if pusher is not None and pusher.problem:
                return None  # said by the next look (`refresh`)
            pusher = Pusher(
                self.store.run_dir(run.id),
                self.streams,
                lambda offsets: self.follow_log(run, offsets),
                lambda: self.store.load(run.id).is_final,
            )
            if not pusher.pushes:
                return None
            self._pushers[run.id] = pusher
        pusher.start()
        return pusher

    def _apply(self, run_id: str, seen: Observation, cancel: CancelRequest | None) -> Run:
        from qwex_core.models import Run

        record = self.store.read(run_id)
        current = Run.model_validate(record)
        if current.is_final:
            return current
        noted = _note(record, seen.data)
        if seen.queued is not None:
            if cancel is not None:  # out of the queue: nothing of it ever ran
                self.signal(current, signal.SIGKILL)
                return self._finish(record, seen, "cancelled", cancel.reason)
            return self._advance(record, "queued", seen.queued, noted=noted)
        if seen.seen is Seen.ALIVE:
            return self._advance(record, "running", None, at=seen.started_at, noted=noted)
        if seen.seen is Seen.EXITED and seen.status in FINAL_STATUSES:
            status, reason = seen.status, seen.reason or seen.status
            if cancel is not None and status in ("cancelled", "failed", "lost"):
                status, reason = "cancelled", cancel.reason
            return self._finish(record, seen, status, reason)
        verdict = self._judge(current, _probe(seen), cancel)
        if verdict.action is Action.KEEP:
            return self._advance(
                record, str(record.get("status")), record.get("reason"), noted=noted
            )
        if verdict.action is Action.STOP:
            self.signal(current, signal.SIGKILL)
        return self._finish(record, seen, verdict.status, verdict.reason)

    def _advance(
        self,
        record: dict[str, Any],
        status: str,
        reason: str | None,
        at: datetime | None = None,
        *,
        noted: bool = False,
    ) -> Run:
        """A non-final status the far side shows, entered once; a new reason alone
        replaces the current one (the history keeps why the status was entered). `noted`:
        the record's `backend_data` changed, to be saved whatever the status."""
        from qwex_core.models import Run

        if record.get("status") == status:
            if record.get("reason") == reason and not noted:
                return Run.model_validate(record)
            record["reason"] = reason
        else:
            transition(record, status, reason)
            if at is not None and status == "running":
                backdate(record, at)
        run = Run.model_validate(record)
        self.store.save(run)
        return run

    def _finish(self, record: dict[str, Any], seen: Observation, status: str, reason: str) -> Run:
        """The end, with `running` first when the run was never seen running, the exit
        code and signal, timed by the far side's clock."""
        from qwex_core.models import Run

        if seen.started_at is not None and not record.get("started_at"):
            transition(record, "running", None)
            backdate(record, seen.started_at)
        record["exit_code"] = seen.exit_code
        record["signal"] = seen.signal
        ended = self.store.record_end(Run.model_validate(record), status, reason)
        if seen.finished_at is None:
            return ended
        final = ended.model_dump(mode="json")
        backdate(final, seen.finished_at)
        run = Run.model_validate(final)
        self.store.save(run, durable=True)
        return run

    def _locked(self, run_id: str) -> contextlib.AbstractContextManager[None]:
        return record_lock(self.store.run_dir(run_id))


def _probe(seen: Observation) -> Probe:
    return Probe(seen.seen, seen.what, exit_code=seen.exit_code, oom=seen.oom)


def _note(record: dict[str, Any], data: Mapping[str, Any] | None) -> bool:
    """Merge `data` into the record's `backend_data`; whether anything changed."""
    if not data:
        return False
    kept = record.setdefault("backend_data", {})
    changed = {k: v for k, v in data.items() if kept.get(k) != v}
    kept.update(changed)
    return bool(changed)
