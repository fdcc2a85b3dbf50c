"""What an Indexed Job of several workers (`--nodes`) or tasks (`--array`) says about its run.

A pure mapping, as `qwex_k8s.status` is for a one-pod Job: each worker's state from its
newest pod (what `status` says of a lone pod), and the run's from the Job's conditions,
which the Job controller sets as its `podFailurePolicy` and backoff limits decide: a
`--nodes` run fails at its first failed worker (the controller then stops the others), an
array when all its tasks have ended and one failed.

| what the cluster shows | qwex |
|---|---|
| Job suspended by Kueue (the whole gang one Workload) | `queued`, Kueue's message |
| a worker's main container running | `running` |
| Job `Failed` / `FailureTarget`, a worker failed | `failed`, `worker K failed: ...` |
| Job `Complete` | `succeeded` |
| no worker running yet | `pending`, the first waiting worker's words |
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from qwex_core.lifecycle import Seen
from qwex_core.observed import Observation

from qwex_k8s import logs, status
from qwex_k8s.manifests import INDEX_ANNOTATION

STATES = {Seen.ALIVE: "running", Seen.STARTING: "pending"}


def rank_of(pod: Any) -> int | None:
    """The pod's index in its Indexed Job (its worker's rank); None when it has none."""
    value = (pod.metadata.annotations or {}).get(INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def newest_by_rank(pods: list[Any]) -> dict[int, Any]:
    """Each rank's newest pod (a retried worker has several)."""
    out: dict[int, Any] = {}
    for pod in sorted(
        pods, key=lambda p: (p.metadata.creation_timestamp or datetime.min, p.metadata.name)
    ):
        rank = rank_of(pod)
        if rank is not None:
            out[rank] = pod
    return out


def worker_views(pods: list[Any], count: int, *, final_job: bool = False) -> dict[int, status.View]:
    """What each worker's newest pod says (ranks without a pod: not there yet, or, once
    the Job has ended, gone); a pod the Job controller or a cancel deleted while it ran
    says `stopped`."""
    views: dict[int, status.View] = {}
    for rank, pod in newest_by_rank(pods).items():
        seen = status._pod(pod, final_job=False, retries=0)
        if seen is None or (
            seen.seen is Seen.STARTING
            and (logs.finished(pod) or pod.metadata.deletion_timestamp is not None)
        ):
            seen = status.View(
                Observation(
                    Seen.EXITED,
                    f"its pod {pod.metadata.name}",
                    status="stopped",
                    reason="stopped: its Job ended or was cancelled",
                ),
                pod=pod.metadata.name,
            )
        views[rank] = seen
    for rank in range(count):
        if final_job:
            gone = Observation(Seen.EXITED, "its Job", status="stopped", reason="its pod is gone")
            views.setdefault(rank, status.View(gone))
        views.setdefault(rank, status._starting("no pod yet"))
    return views


def worker_rows(views: dict[int, status.View], first: int = 0) -> list[dict[str, Any]]:
    """One row per worker for the record (`qwex status` prints one line each)."""
    rows = []
    for rank, view in sorted(views.items()):
        seen = view.observation
        state = seen.status if seen.seen is Seen.EXITED else STATES.get(seen.seen, "pending")
        reason = seen.reason if seen.seen is Seen.EXITED else (view.waiting or None)
        if state in ("stopped", "succeeded"):
            reason = None
        rows.append(
            {
                "rank": rank + first,
                "state": state,
                "pod": view.pod,
                "exit_code": seen.exit_code,
                "reason": None if state == "running" else reason,
            }
        )
    return rows


def observe(
    job: Any | None,
    pods: list[Any],
    workload: dict[str, Any] | None,
    *,
    count: int,
    array_first: int | None,
    known: bool,
    queue: str | None,
) -> tuple[status.View, list[dict[str, Any]]]:
    """The run as the Job and its workers' pods show it, and each worker's row.
    `array_first`: the first index of an array run (None: a `--nodes` run)."""
    noun = "task" if array_first is not None else "worker"
    first = array_first or 0
    if job is None:
        view = status.observe(None, [], None, known=known, queue=queue)
        return view, []
    if job.spec.suspend or (job.metadata.deletion_timestamp is not None and not pods):
        return status.observe(job, [], workload, known=known, queue=queue), []
    conditions = job.status.conditions if job.status else None
    failed = status.condition(conditions, "Failed") or status.condition(conditions, "FailureTarget")
    complete = status.condition(conditions, "Complete") or status.condition(
        conditions, "SuccessCriteriaMet"
    )
    final_job = failed is not None or complete is not None
    views = worker_views(
        pods, count, final_job=final_job or job.metadata.deletion_timestamp is not None
    )
    rows = worker_rows(views, first)
    ended = [v.observation for v in views.values() if v.seen is Seen.EXITED]
    started = [s.started_at for v in views.values() if (s := v.observation).started_at]
    began = min(started) if started else None
    finished = [s.finished_at for s in ended if s.finished_at]
    last = max(finished) if finished else None
    bad = sorted(
        (r for r in rows if r["state"] in ("failed", "lost")),
        key=lambda r: _finish(views[r["rank"] - first]),  # the first to fail is the cause
    )
    live = [r for r in rows if r["state"] in ("running", "pending")]
    deleting = job.metadata.deletion_timestamp is not None
    if complete is not None and not live:
        reason = "exit code 0" if array_first is None else f"{count} tasks succeeded"
        return _end("succeeded", reason, 0, began, last), rows
    if (failed is not None or deleting) and not any(r["state"] == "running" for r in rows):
        if bad:
            worst = bad[0]
            if array_first is None:
                reason = f"worker {worst['rank']} failed: {worst['reason']}"
                others = [r["rank"] for r in rows if r is not worst]
                if others:
                    reason += f" (pod {worst['pod']}); the other workers were stopped"
            else:
                names = ", ".join(str(r["rank"]) for r in bad)
                reason = f"{len(bad)} of {count} tasks failed ({names}); task {worst['rank']}: "
                reason += str(worst["reason"])
            return _end("failed", reason, worst["exit_code"], began, last), rows
        if deleting:
            return _end(
                "lost", "its Job was deleted before the run recorded an end", None, began, last
            ), rows
        why = f"{status._reason(failed)}: {status._message(failed)}"
        return _end("failed", why, None, began, last), rows
    if any(r["state"] == "running" for r in rows) or (final_job and live):
        what = f"its pods ({len(views)} {noun}s)"
        alive = Observation(Seen.ALIVE, what, started_at=began)
        return status.View(alive), rows
    waiting = [v for v in views.values() if v.seen is Seen.STARTING]
    stuck = [v for v in views.values() if v.seen is Seen.EXITED and v.stuck]
    if stuck:
        return replace(stuck[0], observation=replace(stuck[0].observation, what="its Job")), rows
    if waiting:
        first_wait = waiting[0]
        since = [v.unschedulable_since for v in waiting if v.unschedulable_since]
        return status.View(
            Observation(Seen.STARTING, "its Job"),
            waiting=f"{len(waiting)} of {count} {noun}s starting: {first_wait.waiting}",
            unschedulable_since=min(since) if since else None,
        ), rows
    return status._starting("waiting for its pods"), rows


def _finish(view: status.View) -> tuple[bool, float]:
    at = view.observation.finished_at
    return (at is None, at.timestamp() if at is not None else 0.0)


def _end(
    state: str, reason: str, code: int | None, began: datetime | None, last: datetime | None
) -> status.View:
    return status.View(
        Observation(
            Seen.EXITED,
            "its Job",
            status=state,
            reason=reason,
            exit_code=code,
            started_at=began,
            finished_at=last,
        )
    )
