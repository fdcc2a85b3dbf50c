"""What a Slurm job's state means for its run: waiting, alive, or ended and why.

Pure functions of what `scontrol show job` (or `sacct`) says, so the mapping is read and
tested in one place. Slurm's own words are kept: the pending reason while the job waits
(`Resources`, `Priority`, `QOSMaxJobsPerUserLimit`...), the end state and reason after.
"""

from __future__ import annotations

from collections.abc import Mapping

from qwex_core.lifecycle import Probe, Seen

WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
ALIVE = frozenset(
    {
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "STAGE_OUT",
        "RESIZING",
    }
)
ENDS = {
    "COMPLETED": "Slurm's job completed",
    "FAILED": "Slurm's job failed",
    "CANCELLED": "Slurm's job was cancelled",
    "TIMEOUT": "Slurm stopped the job at its time limit",
    "OUT_OF_MEMORY": "the job went over its memory limit and the kernel's OOM killer struck",
    "NODE_FAIL": "the node running the job failed (slurmd stopped answering slurmctld)",
    "PREEMPTED": "the job was preempted by a job of higher priority",
    "BOOT_FAIL": "the node allocated to the job failed to boot",
    "DEADLINE": "the job reached its deadline before it could end",
}
"""Slurm's end states, each with what it means for the user."""
LIMITS = frozenset({"TIMEOUT", "PREEMPTED", "DEADLINE"})
"""End states Slurm reaches by sending the job SIGTERM, which the agent takes for a cancel:
the run `failed` (its own limit, or the scheduler's choice), not `cancelled` by anyone."""
NOT_EXPLAINED = frozenset({"COMPLETED", "FAILED"})
"""End states that add nothing to the agent's own reason (the command's exit code)."""
AGENT_LOST = {
    97: "the compute node does not see the run folder: this backend needs the project "
    "folder shared with the nodes (docs/slurm.md)",
    98: "the compute node does not see the qwex agent (set [tool.qwex.slurm] agent_dir to a "
    "folder the nodes share)",
}
"""Exit codes of the batch script before it becomes the agent (script.py)."""


def state_of(job: Mapping[str, str]) -> str:
    """The job's base state (`COMPLETING` flags and `+` suffixes dropped)."""
    return job.get("JobState", "").split("+")[0].split(" ")[0]


def pending_reason(job: Mapping[str, str]) -> str:
    """Slurm's words for why a pending job waits, e.g. `Resources` or `Priority`."""
    reason = job.get("Reason", "") or "None"
    return reason if reason != "None" else "not scheduled yet"


def exit_status(job: Mapping[str, str]) -> tuple[int | None, int | None]:
    """(exit code, signal) of the batch step from Slurm's `ExitCode=CODE:SIGNAL`."""
    code, _, sig = job.get("ExitCode", "").partition(":")
    try:
        return int(code), int(sig) if sig else None
    except ValueError:
        return None, None


def end_words(job: Mapping[str, str]) -> str:
    """Slurm's end state with its reason and what it means: `TIMEOUT (TimeLimit): ...`."""
    state = state_of(job)
    reason = job.get("Reason", "None")
    said = f"{state} ({reason})" if reason not in ("None", "") else state
    if state == "TIMEOUT" and job.get("TimeLimit"):
        return f"{said}: {ENDS[state]} ({job['TimeLimit']})"
    if state == "CANCELLED":
        by = job.get("CancelledBy")
        who = f"by uid {by}" if by else "outside qwex (who: Slurm records that in accounting only)"
        return f"{said}: {ENDS[state]} {who}"
    meaning = ENDS.get(state)
    return f"{said}: {meaning}" if meaning else said


def probe(job_id: str, job: Mapping[str, str] | None) -> Probe:
    """The run's agent as its job shows it; `job` None: slurmctld and accounting forgot it."""
    what = f"its Slurm job {job_id}"
    if job is None:
        return Probe(
            Seen.GONE, f"{what} (slurmctld no longer holds it, and accounting has no record)"
        )
    state = state_of(job)
    node = job.get("BatchHost") or job.get("NodeList") or ""
    if node and node != "(null)":
        what = f"{what} on {node}"
    if state in WAITING:
        waits = f"Slurm job {job_id} waits: {pending_reason(job)}"
        return Probe(Seen.STARTING, what, queued=waits)
    if state in ALIVE:
        return Probe(Seen.ALIVE, what)
    code, sig = exit_status(job)
    error = end_words(job)
    if code in AGENT_LOST and not sig:
        error = AGENT_LOST[code]
    elif sig:
        error = f"{error}; signal {sig}"
    return Probe(Seen.EXITED, what, exit_code=code, oom=state == "OUT_OF_MEMORY", error=error)
