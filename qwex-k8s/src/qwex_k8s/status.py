"""What a Job, its pods and its Kueue Workload say about a run: a pure mapping.

`observe` turns the objects as the API server returns them (`V1Job`, `V1Pod`, the
Workload as a dict) into a `View`: core's `Observation` of the run (`qwex_core.observed`:
what is there, Kueue's words while it waits, the end the agent recorded) and what the
runner needs besides (the pod whose log is the output, since when it is unschedulable).
Core writes the run record from the observation; nothing here talks to the cluster, so
the table of cases is tested from real objects.

| what the cluster shows | observation | qwex |
|---|---|---|
| Job suspended by Kueue, Workload without quota | `STARTING`, queued | `queued`, Kueue's message |
| Workload `Evicted` / `Preempted` (Job suspended again) | `STARTING`, queued | `queued`, `Preempted: ...` |
| Job suspended, Workload admitted (not resumed yet, or the Workload read before its eviction) | `STARTING` | `pending`; a run already running stays so until the eviction shows |
| pod pending (init container, image present, scheduled) | `STARTING` | `pending` |
| pod unschedulable | `STARTING` | `pending` (failed past `schedule_timeout`) |
| image missing or unpullable (main or agent image) | `EXITED` | `failed`, `ImagePullBackOff: <image>` |
| main container running | `ALIVE` | `running` |
| main container terminated with the agent's record | `EXITED` | that record's status and reason |
| main container `OOMKilled` without a record | `EXITED` | `failed`, `OOMKilled` |
| pod `Evicted` by the kubelet | `EXITED` | `failed`, `Evicted: ...` |
| Job `Failed`, `DeadlineExceeded` | `EXITED` | `failed`, `DeadlineExceeded: ...` |
| Job deleted leaving its pod (`--cascade=orphan`) | what the pod says | |
| Job failed with its pod deleted | `EXITED` | `lost` |
| Job being deleted (a cancel), no pod running | `EXITED` | the pod's end, else `lost` |
| Job and pods gone | `GONE` | `lost` |
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from qwex_core.lifecycle import Seen
from qwex_core.observed import Observation

from qwex_k8s.manifests import AGENT_CONTAINER, MAIN

PULL_ERRORS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")
NEVER_FITS = "> maximum capacity"
"""In Kueue's reason when a run asks more than its ClusterQueue's whole capacity."""
CONFIG_ERRORS = ("CreateContainerConfigError", "CreateContainerError", "RunContainerError")


@dataclass(frozen=True)
class View:
    """The run as the cluster shows it: core's observation, and what the runner needs."""

    observation: Observation
    waiting: str = ""
    """Why it is not running yet (`STARTING`), in the cluster's words."""
    pod: str | None = None
    """The pod whose log is the run's output now (its main container has started)."""
    unschedulable_since: datetime | None = None
    stuck: bool = False
    """Final although the pod never ran (an image that cannot be had...): delete the Job."""

    @property
    def seen(self) -> Seen:
        return self.observation.seen


def _starting(waiting: str, **more: Any) -> View:
    return View(Observation(Seen.STARTING, "its Job"), waiting=waiting, **more)


def _exited(
    status: str,
    reason: str,
    *,
    pod: str | None = None,
    exit_code: int | None = None,
    signal: str | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    stuck: bool = False,
) -> View:
    what = f"its pod {pod}" if pod else "its Job"
    seen = Observation(
        Seen.EXITED,
        what,
        status=status,
        reason=reason,
        exit_code=exit_code,
        signal=signal,
        started_at=started_at,
        finished_at=finished_at,
    )
    return View(seen, pod=pod, stuck=stuck)


def _alive(pod: str, started_at: datetime | None) -> View:
    return View(Observation(Seen.ALIVE, f"its pod {pod}", started_at=started_at), pod=pod)


def condition(conditions: list[Any] | None, kind: str) -> Any | None:
    """The condition of type `kind` whose status is True (objects or dicts)."""
    for cond in conditions or []:
        ctype = cond.get("type") if isinstance(cond, dict) else cond.type
        status = cond.get("status") if isinstance(cond, dict) else cond.status
        if ctype == kind and status == "True":
            return cond
    return None


def _message(cond: Any) -> str:
    if cond is None:
        return ""
    if isinstance(cond, dict):
        return str(cond.get("message") or cond.get("reason") or "")
    return str(cond.message or cond.reason or "")


def _reason(cond: Any) -> str:
    if isinstance(cond, dict):
        return str(cond.get("reason") or "")
    return str(cond.reason or "")


def latest_pod(pods: list[Any]) -> Any | None:
    """The newest pod of the Job (retries and readmissions make new ones)."""
    if not pods:
        return None
    return max(pods, key=lambda p: (p.metadata.creation_timestamp or datetime.min, p.metadata.name))


def still_running(pod: Any) -> bool:
    """Whether the pod's command may still run and write: a pod being deleted keeps running
    through its grace period (a SIGTERM trap's output and exit code come then)."""
    status = pod.status
    if status is None or status.phase not in ("Pending", "Running"):
        return False
    main = _container(status.container_statuses, MAIN)
    return not (main is not None and main.state is not None and main.state.terminated)


def _container(statuses: list[Any] | None, name: str) -> Any | None:
    for status in statuses or []:
        if status.name == name:
            return status
    return None


def termination_record(message: str | None) -> dict[str, Any]:
    """The agent's final record, from a termination message (`{}` when it is not one)."""
    if not message:
        return {}
    try:
        data = json.loads(message)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("status") not in (
        "succeeded",
        "failed",
        "cancelled",
        "lost",
    ):
        return {}
    return data


def queued_reason(job: Any, workload: dict[str, Any] | None, queue: str | None) -> str:
    """Why a suspended Job waits, in Kueue's words."""
    where = f" in {queue}" if queue else ""
    if workload is None:
        return f"waiting for Kueue to admit it{where}"
    conditions = (workload.get("status") or {}).get("conditions") or []
    for kind in ("Preempted", "Evicted"):  # True while evicted (its quota not yet released)
        cond = condition(conditions, kind)
        if cond is not None:
            return f"{kind}: {_message(cond)}"
    if not condition(conditions, "QuotaReserved"):
        requeued = condition(conditions, "Requeued")
        if requeued is not None and _reason(requeued) in ("Preempted", "Evicted"):
            return f"{_reason(requeued)}: {_message(requeued)}"
    for cond in conditions:
        if cond.get("type") == "QuotaReserved" and cond.get("status") == "False":
            message = _message(cond) or f"waiting for quota{where}"
            if NEVER_FITS in message:  # more than the ClusterQueue could ever lend
                return (
                    f"it can never be admitted as it stands (cancel it and ask for less, or "
                    f"have the ClusterQueue grown): {message}"
                )
            return message
    if condition(conditions, "QuotaReserved") and not condition(conditions, "Admitted"):
        return f"quota reserved{where}, waiting for admission checks"
    return f"waiting for Kueue to admit it{where}"


def _admitted(workload: dict[str, Any] | None) -> bool:
    """Whether the Workload holds its admission, neither evicted nor preempted. Kueue evicts
    a Workload before it suspends its Job, so a suspended Job beside such a Workload is one
    about to be resumed, or one whose Workload was read (a separate list or watch) before its
    eviction: not a run waiting in the queue, and not one to say why it waits."""
    conditions = ((workload or {}).get("status") or {}).get("conditions") or []
    return bool(
        condition(conditions, "QuotaReserved")
        and condition(conditions, "Admitted")
        and not condition(conditions, "Evicted")
        and not condition(conditions, "Preempted")
    )


def observe(
    job: Any | None,
    pods: list[Any],
    workload: dict[str, Any] | None = None,
    *,
    known: bool = True,
    queue: str | None = None,
    retries: int = 0,
) -> View:
    """What the Job (None: not found), its pods and its Workload say about the run.
    `known`: the Job was created (its uid is in the record), so not finding it means gone."""
    pod = latest_pod(pods)
    if job is None:
        if pod is not None:  # deleted leaving its pods (`--cascade=orphan`): they tell
            seen = _pod(pod, final_job=True, retries=0, complete_job=True)
            if seen is not None:
                return seen
        if known:
            return View(Observation(Seen.GONE, "its Job"), waiting="its Job is gone")
        return View(Observation(Seen.NOTHING, "its Job"), waiting="its Job is not created yet")
    jstatus = job.status
    conditions = jstatus.conditions if jstatus else None
    failed = condition(conditions, "Failed") or condition(conditions, "FailureTarget")
    complete = condition(conditions, "Complete") or condition(conditions, "SuccessCriteriaMet")
    if job.spec.suspend and not failed and not complete:
        if _admitted(workload):  # about to be resumed, or a Workload read before its eviction
            where = f" in {queue}" if queue else ""
            return View(
                Observation(Seen.STARTING, "its Job"),
                waiting=f"admitted by Kueue{where}; its Job is not resumed yet",
            )
        waiting = Observation(Seen.STARTING, "its Job", queued=queued_reason(job, workload, queue))
        return View(waiting, waiting=waiting.queued or "")
    if job.metadata.deletion_timestamp is not None and not any(still_running(p) for p in pods):
        # Being deleted (a cancel, `kubectl delete job`): it makes no other pod.
        seen = (
            _pod(pod, final_job=True, retries=0, complete_job=complete is not None) if pod else None
        )
        if seen is not None and seen.seen is Seen.EXITED:
            return seen
        return _exited("lost", "its Job was deleted before the run recorded an end")
    if failed is not None and _reason(failed) == "DeadlineExceeded":
        if pod is not None and still_running(pod):  # its grace period: output still comes
            return _alive(pod.metadata.name, None)
        return _final("failed", f"DeadlineExceeded: {_message(failed)}", pod)
    if pod is not None:
        seen = _pod(
            pod,
            final_job=failed is not None or complete is not None,
            retries=retries,
            complete_job=complete is not None,
        )
        if seen is not None:
            return seen
    if complete is not None:
        return _final("succeeded", "exit code 0", pod, exit_code=0)
    if failed is not None:
        return _exited(
            "lost",
            f"its Job failed ({_reason(failed)}: {_message(failed)}) and its pod is "
            "gone: it was deleted or evicted before the agent could record an end",
        )
    return _starting("waiting for its pod")


def _final(status: str, reason: str, pod: Any | None, *, exit_code: int | None = None) -> View:
    main = _container(pod.status.container_statuses, MAIN) if pod and pod.status else None
    terminated = main.state.terminated if main and main.state else None
    return _exited(
        status,
        reason,
        exit_code=exit_code
        if exit_code is not None
        else (terminated.exit_code if terminated else None),
        pod=pod.metadata.name if terminated and pod is not None else None,
        started_at=terminated.started_at if terminated else None,
        finished_at=terminated.finished_at if terminated else None,
    )


def _pod(pod: Any, *, final_job: bool, retries: int, complete_job: bool = False) -> View | None:
    """What one pod says; None when it says nothing final or current (left to the Job)."""
    status = pod.status
    name = pod.metadata.name
    main = _container(status.container_statuses, MAIN)
    init = _container(status.init_container_statuses, AGENT_CONTAINER)
    disrupted = condition(status.conditions, "DisruptionTarget") is not None
    if main is not None and main.state is not None and main.state.terminated is not None:
        done = main.state.terminated
        if not final_job and retries > 0:  # a deleted or failed pod: the Job makes another
            return _starting(f"its pod {name} ended; the Job may retry")
        record = termination_record(done.message)
        code = record.get("exit_code")
        code = code if isinstance(code, int) else done.exit_code
        # A pod deleted after its command ended by itself (the Job's TTL, held by qwex's
        # finalizer) tells that end; one deleted while it ran was stopped by the deletion.
        stopped = not record or record.get("status") == "cancelled"
        deleted = pod.metadata.deletion_timestamp is not None
        ended = {
            "pod": name,
            "exit_code": code,
            "signal": record.get("signal"),
            "started_at": done.started_at,
            "finished_at": done.finished_at,
        }
        if deleted and stopped and not disrupted and not complete_job:
            if not final_job:  # the Job decides: another pod (a readmission), or its end
                return _starting(f"its pod {name} was deleted; waiting for its Job", pod=name)
            return _exited(
                "lost",
                f"its pod {name} was deleted outside qwex before the run ended (exit code {code})",
                **ended,
            )
        if disrupted and not final_job:
            return _starting(f"its pod {name} was disrupted: {done.reason or ''}".strip())
        if record:
            return _exited(str(record["status"]), str(record.get("reason") or ""), **ended)
        code = done.exit_code
        if done.reason == "OOMKilled":
            reason = (
                "OOMKilled: the pod ran out of memory and the agent was killed with the command"
            )
            return _exited("failed", reason, **{**ended, "exit_code": code})
        reason = "exit code 0" if code == 0 else f"exit code {code}"
        return _exited(
            "succeeded" if code == 0 else "failed", reason, **{**ended, "exit_code": code}
        )
    if status.reason == "Evicted" or (status.phase == "Failed" and status.reason):
        return _exited("failed", f"{status.reason}: {status.message or ''}".strip())
    for cstatus in (init, main):
        if cstatus is None or cstatus.state is None or cstatus.state.waiting is None:
            continue
        waiting = cstatus.state.waiting
        shown = cstatus.image
        if waiting.reason in PULL_ERRORS:
            hint = (
                "the agent image (load it into the nodes or push it: see docs/kubernetes.md)"
                if cstatus.name == AGENT_CONTAINER
                else "the node cannot get it"
            )
            return _exited(
                "failed",
                f"ImagePullBackOff: {shown}: {hint} ({waiting.reason}: "
                f"{(waiting.message or '').strip()})",
                stuck=True,
            )
        if waiting.reason in CONFIG_ERRORS:
            return _exited(
                "failed", f"{waiting.reason}: {waiting.message or ''}".strip(), stuck=True
            )
    if main is not None and main.state is not None and main.state.running is not None:
        return _alive(name, main.state.running.started_at)
    for cond in status.conditions or []:
        if (
            cond.type == "PodScheduled"
            and cond.status == "False"
            and cond.reason == "Unschedulable"
        ):
            return _starting(
                f"Unschedulable: {cond.message or ''}".strip(),
                unschedulable_since=cond.last_transition_time,
            )
    if pod.metadata.deletion_timestamp is not None and not final_job:
        return _starting(f"its pod {name} is being deleted")
    if final_job:
        return None
    return _starting(f"its pod {name} is {(status.phase or 'pending').lower()}")


def attempts(
    pods: list[Any], earlier: list[dict[str, Any]], starts: dict[str, int]
) -> list[dict[str, Any]]:
    """The run's attempts, one per pod in the order they were made (a retry, a readmission
    after preemption): the pod, when its command started and ended, how, and where its
    output begins in the run's log (`starts`: the copier's byte offsets). `earlier`
    attempts whose pod is gone are kept."""
    seen = {a["pod"]: a for a in earlier}
    for pod in sorted(pods, key=lambda p: p.metadata.creation_timestamp or datetime.min):
        main = _container(pod.status.container_statuses, MAIN) if pod.status else None
        state = main.state if main is not None else None
        running = state.running if state is not None else None
        done = state.terminated if state is not None else None
        began = done.started_at if done is not None else (running.started_at if running else None)
        seen[pod.metadata.name] = {
            "pod": pod.metadata.name,
            "started_at": began.isoformat() if began else None,
            "ended_at": done.finished_at.isoformat() if done and done.finished_at else None,
            "exit_code": done.exit_code if done is not None else None,
            "reason": (done.reason if done is not None else None)
            or (pod.status.phase if pod.status else None),
            "log_offset": starts.get(pod.metadata.name),
        }
    return list(seen.values())
