"""What a container's state means for a run whose record is not final.

The agent in the container is the only writer of the record until the run is
final (see `qwex_core.agent.record`). The host writes it only when the agent
can no longer do so: the container is gone, exited without a final record,
or never started. A pure function of `docker inspect` data and the record, so
the rules are read and tested in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

NEVER_STARTED_AFTER = 30.0
"""Seconds after which a run whose container does not exist or never started is lost."""


class Action(Enum):
    KEEP = "keep"
    """Nothing to do: the agent is (or will soon be) at work."""
    LOST = "lost"
    """Record `lost` with the reason."""
    CANCELLED = "cancelled"
    """Record `cancelled`: the container was stopped on a cancel before the agent could."""
    KILL = "kill"
    """A cancel's grace period (plus margin) is over and the container still runs: SIGKILL it."""
    DISCARD = "discard"
    """Remove the never-started container, then record `lost`."""


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""


def judge(
    info: dict[str, Any] | None,
    *,
    has_container_id: bool,
    age: float,
    cancel_age: float | None,
    cancel_reason: str,
    stop_after: float,
) -> Verdict:
    """Decide from the container (`docker inspect` data, None when it is gone).

    `age` is the run's age in seconds, `cancel_age` the seconds since a cancel was asked
    (None: no cancel), `stop_after` the grace period plus margin of a cancel."""
    if info is None:
        if not has_container_id:
            if age < NEVER_STARTED_AFTER:
                return Verdict(Action.KEEP)
            return Verdict(
                Action.LOST,
                "the container was never created (the qwex process that "
                "started the run stopped before creating it)",
            )
        if cancel_age is not None:
            return Verdict(Action.CANCELLED, f"{cancel_reason} (its container is gone)")
        return Verdict(
            Action.LOST,
            "its container is gone and the run had not recorded an end (the agent was "
            "killed, or the container was removed outside qwex)",
        )
    state = info.get("State") or {}
    status = state.get("Status", "")
    short = str(info.get("Id", ""))[:12]
    if status == "created":
        if age < NEVER_STARTED_AFTER:
            return Verdict(Action.KEEP)
        return Verdict(Action.DISCARD, f"its container {short} was created but never started")
    if status in ("running", "paused", "restarting", "removing"):
        if cancel_age is not None and cancel_age > stop_after and status != "removing":
            return Verdict(Action.KILL)
        return Verdict(Action.KEEP)
    if state.get("OOMKilled"):
        return Verdict(
            Action.LOST,
            "OOMKilled: the container ran out of memory and the agent was killed with the command",
        )
    if cancel_age is not None:
        return Verdict(
            Action.CANCELLED,
            f"{cancel_reason} (the agent did not stop within the grace "
            "period; its container was killed)",
        )
    code = state.get("ExitCode")
    error = f": {state['Error']}" if state.get("Error") else ""
    return Verdict(
        Action.LOST,
        f"the agent in container {short} exited with code {code} without recording an end{error}",
    )


def oom_reason(memory: str | None) -> str:
    """The reason of a run whose command the kernel's OOM killer stopped."""
    limit = f" (memory limit {memory})" if memory else ""
    return f"OOMKilled: the command ran out of memory{limit}"
