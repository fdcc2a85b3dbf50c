"""From a run to the Kubernetes objects that run it: the Job, its pod, the code's ConfigMap.

Pure functions of the run, the `[tool.qwex.k8s]` settings and a few facts, returning
plain dicts in the API's own spelling, so what qwex asks the cluster for can be read,
validated against the official schema and tested in one place (docs/architecture.md).

The pod's first container (an init container of the small agent image) copies the
self-contained agent into an `emptyDir`, mounted read-only at `/qwex` in the main
container, whose command becomes the agent's: the user's image is used as it is.
"""

from __future__ import annotations

import base64
import json
import math
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwex_core.agent import image_name
from qwex_core.agent.main import command_line, copy_command
from qwex_core.errors import SpecError
from qwex_core.lifecycle import STOP_MARGIN
from qwex_core.models import JobSpec, Run
from qwex_core.workers import MASTER_PORT, rendezvous_env

from qwex_k8s.finalizer import FINALIZER
from qwex_k8s.settings import SNAPSHOT, K8sSettings

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN_ID = "qwex.dev/run-id"
LABEL_SNAPSHOT = "qwex.dev/snapshot"
ANNOTATION_PROJECT = "qwex.dev/project"
ANNOTATION_RUN_DIR = "qwex.dev/run-dir"
ANNOTATION_HOST = "qwex.dev/host"
ANNOTATION_OWNER = "qwex.dev/owner"
"""`qwex_core.ownership.owner_token` of the project: what `qwex gc` proves ownership by."""
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"

MAIN = "main"
"""The container running the agent and, under it, the user's command."""
AGENT_CONTAINER = "qwex-agent"
AGENT_MOUNT = "/qwex"
AGENT_INSTALL = "/qwex-install"
LAUNCHER = f"{AGENT_MOUNT}/bin/qwex"
AGENT_COPY = copy_command((LAUNCHER,), AGENT_INSTALL)
RUN_DIR = "/qwex-run"
"""The agent's own run folder in the pod (an emptyDir): the host's record is kept by qwex."""
CODE_DIR = "/qwex-code"
SNAPSHOT_KEY = "snapshot.tar.gz"
TERMINATION_LOG = "/dev/termination-log"
AGENT_ERROR = 125
"""The agent's exit code when it cannot run the command at all: the Job fails at once."""
RESERVED = (AGENT_MOUNT, RUN_DIR, CODE_DIR, "/dev/shm")
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
"""Set by the Job controller on each pod of an Indexed Job: its index (a worker's rank)."""
INDEX_LABEL = INDEX_ANNOTATION
"""The same as a label (Kubernetes 1.28 and later): `kubectl logs -l` selects a rank by it."""


@dataclass(frozen=True)
class Facts:
    """What the manifests need besides the run and the settings."""

    namespace: str
    project_dir: Path
    run_dir: Path
    host: str
    snapshot: str | None = None
    """Name of the ConfigMap holding the project's snapshot (code = snapshot)."""
    owner: str | None = None
    """The project's owner token (`qwex_core.ownership`), on the Job and its pods."""


def agent_image(settings: K8sSettings) -> str:
    """The agent image: the configured one, else the one matching this qwex-core."""
    return settings.agent_image or image_name()


def job_name(run_id: str) -> str:
    """The Job's name: `qwex-` and the run id (41 characters, a valid DNS label)."""
    return f"qwex-{run_id}"[:63].rstrip("-")


def secret_name(run_id: str) -> str:
    """The Secret holding a run's secret env (owned by its Job, deleted with it)."""
    return f"qwex-env-{run_id}"[:63].rstrip("-")


def secret_keys(run: Run) -> dict[str, str]:
    """Each secret env var and its key in the Secret (`e0`, `e1`...: a key must be a valid
    file name, an env var name need not be)."""
    return {name: f"e{i}" for i, name in enumerate(sorted(run.spec.secret_env))}


def secret_manifest(run: Run, namespace: str) -> dict[str, Any]:
    """The Secret of a run's secret env: the pod reads it through `secretKeyRef`, so the
    Job's manifest names keys, never values."""
    keys = secret_keys(run)
    data = {
        key: base64.b64encode(run.spec.secret_env[name].encode()).decode("ascii")
        for name, key in keys.items()
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name(run.id), "namespace": namespace, "labels": labels(run)},
        "immutable": True,
        "data": data,
    }


def snapshot_name(sha256: str) -> str:
    """A content-addressed ConfigMap name: an unchanged tree is never sent twice."""
    return f"qwex-code-{sha256[:40]}"


def container_workdir(spec: JobSpec, project_dir: Path) -> tuple[str, str | None]:
    """The project's place in the container, and the sub-folder the command starts in."""
    base = spec.container.workdir
    if not spec.workdir:
        return base, None
    host = (project_dir / spec.workdir).resolve()
    project = project_dir.resolve()
    if not host.is_relative_to(project):
        raise SpecError(
            f"workdir {spec.workdir} is not inside the project {project}, which is what the "
            f"pod gets (at {base}); set container.workdir to a path in the image instead"
        )
    rel = host.relative_to(project).as_posix()
    return base, None if rel == "." else rel


def check(spec: JobSpec, project_dir: Path, settings: K8sSettings) -> None:
    """Raise `SpecError` for a job this backend cannot run, before anything is created."""
    if not spec.container.image:
        raise SpecError(
            "the k8s backend needs an image: pass --image IMAGE or set `image` in "
            "[tool.qwex] (or a profile)"
        )
    if spec.mounts:
        raise SpecError(
            "host mounts (--mount) cannot reach a Kubernetes pod; put the data in a "
            'PersistentVolumeClaim and set [tool.qwex.k8s] code = "pvc:<claim>", or in the image'
        )
    base, _ = container_workdir(spec, project_dir)
    normal = posixpath.normpath(base)
    if not base.startswith("/") or any(normal == r or normal.startswith(r + "/") for r in RESERVED):
        raise SpecError(f"container.workdir {base!r} must be absolute and not under {RESERVED}")
    taken = {normal}
    for extra in settings.volumes:
        where = posixpath.normpath(extra.mount)
        if where in taken or any(where == r or where.startswith(r + "/") for r in RESERVED):
            raise SpecError(
                f"[tool.qwex.k8s] volumes: {extra.mount!r} is the code's folder, another "
                f"volume's, or under {RESERVED}; choose another mount"
            )
        taken.add(where)
    user(spec)
    if spec.array is not None and spec.array.first != 0:
        raise SpecError(
            f"--array {spec.array}: on Kubernetes an array starts at 0 (an Indexed Job's "
            f"indexes); use --array 0-{spec.array.count - 1}"
            + (f"%{spec.array.limit}" if spec.array.limit else "")
            + f" and add {spec.array.first} to QWEX_ARRAY_INDEX in the command"
        )


def master_addr(run_id: str) -> str:
    """Worker 0's DNS name: its hostname (`<job>-0`, set by the Indexed Job) under the
    headless Service named as the Job (the pods' `subdomain`), found through the pods'
    DNS search path (`<namespace>.svc.<cluster domain>`)."""
    name = job_name(run_id)
    return f"{name}-0.{name}"


def service_manifest(run: Run, namespace: str, owner: dict[str, Any]) -> dict[str, Any]:
    """The headless Service of a `--nodes` run: it gives each worker pod a DNS name
    (`<job>-<rank>.<job>`), published before the pods are ready (the rendezvous happens
    while they start); owned by the Job, so it goes with it."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": job_name(run.id),
            "namespace": namespace,
            "labels": labels(run),
            "ownerReferences": [owner],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL_RUN_ID: run.id},
            "publishNotReadyAddresses": True,
        },
    }


def _index_env(name: str) -> dict[str, Any]:
    """`name` set to the pod's index in its Indexed Job (the downward API)."""
    path = f"metadata.annotations['{INDEX_ANNOTATION}']"
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def worker_env(run: Run) -> list[dict[str, Any]]:
    """The rendezvous environment of a `--nodes` run's pods (`qwex_core.workers`), or an
    array task's index: the same on every pod but for the index, read from the pod."""
    spec = run.spec
    if spec.array is not None:
        return [_index_env("QWEX_ARRAY_INDEX")]
    if spec.nodes == 1:
        return []
    fixed = rendezvous_env(spec, master_addr(run.id), MASTER_PORT)
    env = [{"name": k, "value": v} for k, v in fixed.items()]
    names = ["NODE_RANK", "PET_NODE_RANK"]
    if spec.procs_per_node == 1:
        names.append("RANK")
        env.append({"name": "LOCAL_RANK", "value": "0"})
    return env + [_index_env(n) for n in names]


def user(spec: JobSpec) -> dict[str, int]:
    """`container.user` ("uid" or "uid:gid") as a securityContext (default: the image's)."""
    text = spec.container.user
    if not text or text == "image":
        return {}
    uid, _, gid = text.partition(":")
    try:
        out = {"runAsUser": int(uid)}
        if gid:
            out["runAsGroup"] = int(gid)
    except ValueError:
        raise SpecError(
            f"container.user {text!r} must be numeric uid[:gid] on Kubernetes"
        ) from None
    return out


def agent_command(run: Run, *, snapshot: bool, subdir: str | None) -> list[str]:
    """The main container's command: the mounted agent, then the user's command. A command
    started in a sub-folder of an unpacked snapshot is started there by the agent (an image
    without a shell, FROM scratch, runs it too)."""
    return command_line(
        (LAUNCHER,),
        run_dir=RUN_DIR,
        grace=run.spec.grace_period,
        command=list(run.spec.command),
        quiet=False,
        snapshot=f"{CODE_DIR}/{SNAPSHOT_KEY}" if snapshot else None,
        workdir=subdir if snapshot else None,
        termination_log=TERMINATION_LOG,
    )


def literal(text: str) -> str:
    """`text` as Kubernetes passes it on: a command or env value expands `$(VAR)` and reads
    `$$` as `$`, so every `$` is doubled (`kill -9 $$` reaches the shell as written)."""
    return text.replace("$", "$$")


def quantity_cpu(cores: float) -> str:
    """CPU cores as a Kubernetes quantity (millicores when fractional)."""
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def resources(spec: JobSpec, settings: K8sSettings) -> dict[str, dict[str, str]]:
    """Requests and limits: cpu and memory both (a guaranteed share, the OOM killer past the
    memory limit); GPUs and other extended resources in limits (requests default to them)."""
    res = spec.resources
    amounts: dict[str, str] = {}
    if res.cpu is not None:
        amounts["cpu"] = quantity_cpu(res.cpu)
    if res.memory_bytes is not None:
        amounts["memory"] = str(res.memory_bytes)
    limits = dict(amounts)
    if res.gpu:
        limits[settings.gpu_resource] = str(res.gpu)
    limits.update(settings.extra_resources)
    out: dict[str, dict[str, str]] = {}
    if amounts:
        out["requests"] = amounts
    if limits:
        out["limits"] = limits
    return out


LABEL_NAME = "qwex.dev/name"
ANNOTATION_LABELS = "qwex.dev/labels"
_LABEL_VALUE = re.compile(r"(|[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_label(key: str, value: str) -> bool:
    """Whether `key=value` is a valid Kubernetes label (optional DNS prefix, 63-character
    name and value of letters, digits, `-`, `_`, `.`)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix)):
        return False
    return bool(_LABEL_NAME.fullmatch(name) and _LABEL_VALUE.fullmatch(value))


def labels(run: Run) -> dict[str, str]:
    """qwex's own labels, after the run's `--label`s and `--name` that Kubernetes accepts as
    labels (`kubectl get jobs -l team=nlp` finds the run); the others are annotations."""
    out = {k: v for k, v in run.spec.labels.items() if is_label(k, v)}
    if run.spec.name and is_label(LABEL_NAME, run.spec.name):
        out[LABEL_NAME] = run.spec.name
    out.update({MANAGED_BY: "qwex", LABEL_RUN_ID: run.id})
    return out


def label_annotations(run: Run) -> dict[str, str]:
    """The run's labels that are not valid Kubernetes labels, as JSON in one annotation."""
    other = {k: v for k, v in run.spec.labels.items() if not is_label(k, v)}
    return {ANNOTATION_LABELS: json.dumps(other, sort_keys=True)} if other else {}


def job_manifest(run: Run, settings: K8sSettings, facts: Facts) -> dict[str, Any]:
    """The `batch/v1` Job that runs `run`; queued by Kueue when a queue is named (the label
    on the Job's own metadata, never on the pod template, and created suspended)."""
    spec = run.spec
    base, subdir = container_workdir(spec, facts.project_dir)
    snapshot = settings.code == SNAPSHOT
    metadata_labels = labels(run)
    if settings.queue:
        metadata_labels[QUEUE_LABEL] = settings.queue
        if settings.priority_class:
            metadata_labels[PRIORITY_LABEL] = settings.priority_class
    mounts = [
        {"name": "qwex-agent", "mountPath": AGENT_MOUNT, "readOnly": True},
        {"name": "qwex-run", "mountPath": RUN_DIR},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "qwex-agent", "emptyDir": {}},
        {"name": "qwex-run", "emptyDir": {}},
    ]
    if snapshot:
        if facts.snapshot is None:
            raise ValueError("code = snapshot needs the snapshot's ConfigMap")
        mounts += [
            {"name": "qwex-code", "mountPath": CODE_DIR, "readOnly": True},
            {"name": "workspace", "mountPath": base},
        ]
        volumes += [
            {"name": "qwex-code", "configMap": {"name": facts.snapshot}},
            {"name": "workspace", "emptyDir": {}},
        ]
    elif settings.pvc:
        mounts.append({"name": "workspace", "mountPath": base})
        volumes.append({"name": "workspace", "persistentVolumeClaim": {"claimName": settings.pvc}})
    for index, extra in enumerate(settings.volumes):
        name = f"volume-{index}"
        mount: dict[str, Any] = {"name": name, "mountPath": extra.mount}
        if extra.read_only or extra.secret:
            mount["readOnly"] = True
        if extra.sub_path:
            mount["subPath"] = extra.sub_path
        mounts.append(mount)
        if extra.pvc:
            source: dict[str, Any] = {"persistentVolumeClaim": {"claimName": extra.pvc}}
            if extra.read_only:
                source["persistentVolumeClaim"]["readOnly"] = True
        else:
            source = {"secret": {"secretName": extra.secret}}
        volumes.append({"name": name, **source})
    if settings.shm_size:
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        volumes.append(
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shm_size}}
        )
    workdir = posixpath.join(base, subdir) if subdir and not snapshot else base
    env: list[dict[str, Any]] = [
        {"name": k, "value": literal(v)} for k, v in spec.env.items() if k not in spec.secret_env
    ]
    secret = secret_name(run.id)
    env += [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for name, key in secret_keys(run).items()
    ]
    env.append({"name": "QWEX_RUN_ID", "value": run.id})
    env += worker_env(run)
    main: dict[str, Any] = {
        "name": MAIN,
        "image": spec.container.image,
        "imagePullPolicy": "Always" if spec.container.pull else settings.image_pull_policy,
        "command": [literal(arg) for arg in agent_command(run, snapshot=snapshot, subdir=subdir)],
        "workingDir": workdir,
        "env": env,
        "resources": resources(spec, settings),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    if settings.env_from:
        main["envFrom"] = [{"secretRef": {"name": name}} for name in settings.env_from]
    if security := user(spec):
        main["securityContext"] = security
    init = {
        "name": AGENT_CONTAINER,
        "image": agent_image(settings),
        "imagePullPolicy": settings.image_pull_policy,
        "command": AGENT_COPY,
        "volumeMounts": [{"name": "qwex-agent", "mountPath": AGENT_INSTALL}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "initContainers": [init],
        "containers": [main],
        "volumes": volumes,
        # The agent forwards SIGTERM to the command and kills it after the grace period.
        "terminationGracePeriodSeconds": math.ceil(spec.grace_period + STOP_MARGIN),
        "enableServiceLinks": False,
    }
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    else:
        pod["automountServiceAccountToken"] = False
    if settings.node_selector:
        pod["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod["tolerations"] = [t.manifest() for t in settings.tolerations]
    # On the pods too: a pod whose Job was deleted with --cascade=orphan is still traced home.
    owners = {
        **label_annotations(run),
        ANNOTATION_PROJECT: str(facts.project_dir),
        ANNOTATION_RUN_DIR: str(facts.run_dir),
        ANNOTATION_HOST: facts.host,
    }
    if facts.owner:
        owners[ANNOTATION_OWNER] = facts.owner
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.retries,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": MAIN,
                        "operator": "In",
                        "values": [AGENT_ERROR],
                    },
                },
            ]
        },
        "ttlSecondsAfterFinished": settings.ttl_seconds_after_finished,
        "suspend": bool(settings.queue),
        "template": {
            "metadata": {"labels": labels(run), "annotations": owners, "finalizers": [FINALIZER]},
            "spec": pod,
        },
    }
    if settings.timeout:
        job_spec["activeDeadlineSeconds"] = settings.timeout
    if spec.nodes > 1:
        # A gang: N pods at once (Kueue admits them as one Workload), each its own rank;
        # the first worker to fail fails the Job, whose controller then stops the others.
        job_spec.update(completionMode="Indexed", completions=spec.nodes, parallelism=spec.nodes)
        job_spec["podFailurePolicy"]["rules"].append(
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": MAIN, "operator": "NotIn", "values": [0]},
            }
        )
        pod["subdomain"] = job_name(run.id)
    elif spec.array is not None:
        # Tasks independent of each other: each index has its own retries (a failed task
        # does not stop the others), at most `limit` pods at once.
        job_spec.update(
            completionMode="Indexed",
            completions=spec.array.count,
            parallelism=spec.array.parallel,
            backoffLimitPerIndex=settings.retries,
        )
        del job_spec["backoffLimit"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run.id),
            "namespace": facts.namespace,
            "labels": metadata_labels,
            "annotations": dict(owners),
        },
        "spec": job_spec,
    }


def snapshot_configmap(sha256: str, data: bytes, namespace: str) -> dict[str, Any]:
    """The immutable ConfigMap holding a snapshot; its owners (the Jobs) are added after."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": snapshot_name(sha256),
            "namespace": namespace,
            "labels": {MANAGED_BY: "qwex", LABEL_SNAPSHOT: sha256[:63]},
        },
        "immutable": True,
        "binaryData": {SNAPSHOT_KEY: base64.b64encode(data).decode("ascii")},
    }


def owner_reference(job: dict[str, Any] | Any, uid: str) -> dict[str, Any]:
    """An owner reference to the Job `job_name`, so the cluster deletes what it owns with it."""
    name = job["metadata"]["name"] if isinstance(job, dict) else str(job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": uid,
        "blockOwnerDeletion": False,
    }
