"""What a non-final run's state means: the decisions every runner shares.

The agent writes the run record until the run is final. The host writes it only
when the agent no longer can: nothing was ever started, what was started is
gone, or it exited without recording an end; or a cancel was asked and the
agent did not stop in time. A backend describes what it sees as a `Probe`
(`Runner.probe`); `judge` turns that probe, the record's age and a pending
cancel into a `Verdict`, and `Runner.refresh` carries it out through
`RunStore.record_end`. Pure functions, so the rules are read and tested in one
place.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from enum import Enum

from qwex_core.agent.record import CANCEL_FILE, cancel_reason

STOP_MARGIN = 5.0
"""Seconds past a cancel's grace period before the host kills what the agent did not stop:
time for the agent to kill the command, drain its pipes and write the final record."""


class Seen(Enum):
    """What a backend found when it looked for what it started."""

    NOTHING = "nothing"
    """Nothing, and nothing was recorded to look for: the run may not have been started yet."""
    STARTING = "starting"
    """Created but not running yet (a created container, a pending pod)."""
    ALIVE = "alive"
    """The agent is running."""
    GONE = "gone"
    """It was started, but is gone without a trace (a removed container, a deleted pod)."""
    EXITED = "exited"
    """The agent has exited; `Probe.exit_code`, `oom` and `error` say how when known."""


@dataclass(frozen=True)
class Probe:
    """A backend's look at what it started for a run."""

    seen: Seen
    what: str = "the agent"
    """How reasons name it: "the agent (pid 4242)", "its container 3f2a9c1d4e5f"."""
    exit_code: int | None = None
    oom: bool = False
    """The kernel's OOM killer stopped it (a container's or pod's OOMKilled)."""
    error: str = ""
    leftovers: bool = False
    """The agent is gone but processes it started still run: stop them."""
    queued: str | None = None
    """The scheduler's words while what was started waits in its queue (`seen` STARTING):
    `Runner.refresh` records the run `queued` with them, and the start timeout does not run
    out under it. Core writes that under the run's lock (`store.record_lock`) after a second
    look still sees it queued; a backend whose agent writes the record must not let the agent
    start while that lock is held (the Slurm backend's batch script waits for it)."""


class Action(Enum):
    KEEP = "keep"
    """The record stands: the agent is (or will soon be) at work."""
    RECORD = "record"
    """Record the verdict's final status and reason."""
    STOP = "stop"
    """Kill what is left of the run (`Runner.signal(run, SIGKILL)`), then record."""


@dataclass(frozen=True)
class Verdict:
    action: Action
    status: str = ""
    reason: str = ""


KEEP = Verdict(Action.KEEP)


@dataclass(frozen=True)
class CancelRequest:
    """A cancel someone asked for (the cancel marker in the run folder)."""

    reason: str
    age: float
    """Seconds since it was asked."""

    @classmethod
    def of(cls, run_dir: str | os.PathLike[str]) -> CancelRequest | None:
        reason = cancel_reason(run_dir)
        if reason is None:
            return None
        try:
            asked = os.stat(os.path.join(run_dir, CANCEL_FILE)).st_mtime
        except OSError:
            asked = time.time()
        return cls(reason, max(0.0, time.time() - asked))


def judge(
    probe: Probe,
    *,
    age: float,
    cancel: CancelRequest | None,
    grace_period: float,
    start_timeout: float,
) -> Verdict:
    """Decide what `probe` means for a run whose record is not final.

    `age`: seconds since the run was created; `cancel`: a pending cancel;
    `grace_period`: the run's SIGTERM-to-SIGKILL time; `start_timeout`: how long
    a run may stay unstarted before it is `lost` (the backend's own patience)."""
    what = probe.what
    match probe.seen:
        case Seen.NOTHING:
            if cancel is not None:
                return Verdict(Action.RECORD, "cancelled", cancel.reason)
            if age < start_timeout:
                return KEEP
            return Verdict(
                Action.RECORD,
                "lost",
                f"{what} never started (the qwex process that started the run stopped first)",
            )
        case Seen.STARTING:
            if cancel is not None:
                return Verdict(Action.STOP, "cancelled", cancel.reason)
            if age < start_timeout:
                return KEEP
            return Verdict(Action.STOP, "lost", f"{what} was created but never started")
        case Seen.ALIVE:
            if cancel is not None and cancel.age > grace_period + STOP_MARGIN:
                return Verdict(
                    Action.STOP,
                    "cancelled",
                    f"{cancel.reason} (the agent did not stop within the grace period; "
                    f"{what} was killed)",
                )
            return KEEP
        case Seen.GONE:
            if cancel is not None:
                return Verdict(Action.RECORD, "cancelled", f"{cancel.reason} ({what} is gone)")
            return Verdict(
                Action.RECORD,
                "lost",
                f"{what} is gone and the run had not recorded an end (the agent was killed, "
                "or it was removed outside qwex)",
            )
    action = Action.STOP if probe.leftovers else Action.RECORD
    stopped = "; its command was stopped" if probe.leftovers else ""
    if probe.oom:
        return Verdict(
            action,
            "lost",
            f"OOMKilled: {what} ran out of memory and the agent was killed with the command",
        )
    if cancel is not None:
        return Verdict(action, "cancelled", f"{cancel.reason} ({what} stopped{stopped})")
    code = "" if probe.exit_code is None else f" with code {probe.exit_code}"
    error = f": {probe.error}" if probe.error else ""
    return Verdict(action, "lost", f"{what} exited{code} without recording an end{error}{stopped}")


def oom_reason(memory: str | None) -> str:
    """The reason of a run whose command the kernel's OOM killer stopped."""
    limit = f" (memory limit {memory})" if memory else ""
    return f"OOMKilled: the command ran out of memory{limit}"
