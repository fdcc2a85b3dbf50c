"""`[tool.qwex.k8s]`: which cluster, namespace and queue, and how the pod is dressed.

What to run (image, resources, env, workdir) is the job's `JobSpec` in qwex-core;
this section holds what only Kubernetes needs. Profiles and `QWEX_K8S_<KEY>`
variables reach it like any section; `qwex run --queue` sets `queue`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SNAPSHOT = "snapshot"
IMAGE = "image"


class Toleration(BaseModel):
    """A pod toleration, as Kubernetes spells it."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    operator: str = Field(default="Equal", pattern="^(Equal|Exists)$")
    value: str | None = None
    effect: str | None = Field(default=None, pattern="^(NoSchedule|PreferNoSchedule|NoExecute)$")
    toleration_seconds: int | None = None

    def manifest(self) -> dict[str, Any]:
        out = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
            "tolerationSeconds": self.toleration_seconds,
        }
        return {k: v for k, v in out.items() if v is not None}


class Volume(BaseModel):
    """A volume beside the code: an existing PersistentVolumeClaim or Secret, mounted in
    the main container (`[[tool.qwex.k8s.volumes]]` or `volumes = [{...}]`)."""

    model_config = ConfigDict(extra="forbid")

    mount: str = Field(pattern="^/", description="absolute path in the container")
    pvc: str | None = Field(default=None, description="name of a PersistentVolumeClaim")
    secret: str | None = Field(default=None, description="name of a Secret (its keys as files)")
    read_only: bool = Field(default=False, description="mounted read-only (a Secret always is)")
    sub_path: str | None = Field(default=None, description="a sub-folder of the volume")

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        if (self.pvc is None) == (self.secret is None):
            raise ValueError("a volume names exactly one of pvc or secret")
        return self


class K8sSettings(BaseModel):
    """Validated `[tool.qwex.k8s]` table (also `QWEX_K8S_<KEY>` variables)."""

    model_config = ConfigDict(extra="forbid")

    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig file (default: KUBECONFIG, else ~/.kube/config, else the "
        "in-cluster service account)",
    )
    context: str | None = Field(default=None, description="kubeconfig context (default: current)")
    namespace: str | None = Field(
        default=None, description="namespace of the Jobs (default: the context's, else default)"
    )
    queue: str | None = Field(
        default=None,
        description="Kueue LocalQueue: the Job is created suspended with the queue-name label",
    )
    priority_class: str | None = Field(
        default=None, description="Kueue WorkloadPriorityClass (kueue.x-k8s.io/priority-class)"
    )
    agent_image: str | None = Field(
        default=None, description="image holding the qwex agent (default: qwex/agent:<version>)"
    )
    image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    code: str = Field(
        default=SNAPSHOT,
        description="how the project reaches the pod: `snapshot` (a ConfigMap), `image` (the "
        "code is in the image) or `pvc:<claim>` (an existing PersistentVolumeClaim)",
    )
    snapshot_limit: int = Field(
        default=700 * 1024, gt=0, description="largest compressed snapshot, in bytes"
    )
    ttl_seconds_after_finished: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="seconds a finished Job (and its logs) stays for qwex to collect",
    )
    timeout: int | None = Field(
        default=None, gt=0, description="activeDeadlineSeconds: the run fails past it"
    )
    retries: int = Field(default=0, ge=0, description="backoffLimit: pods retried on failure")
    service_account: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    volumes: list[Volume] = Field(
        default_factory=list,
        description="PersistentVolumeClaims and Secrets mounted beside the code, e.g. "
        '[{mount = "/data", pvc = "datasets", read_only = true}]',
    )
    env_from: list[str] = Field(
        default_factory=list, description="names of Secrets whose keys become env variables"
    )
    shm_size: str | None = Field(
        default="1Gi", description="size of the memory-backed /dev/shm (none: no such volume)"
    )
    gpu_resource: str = Field(
        default="nvidia.com/gpu", description="extended resource that `--gpu N` asks for"
    )
    extra_resources: dict[str, str] = Field(
        default_factory=dict, description='more limits, e.g. {"example.com/fpga" = "1"}'
    )
    schedule_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds an admitted pod may stay unschedulable before the run fails",
    )
    gc_namespaces: list[str] = Field(
        default_factory=list,
        description="namespaces `qwex gc` looks in beside the configured one; "
        '["*"]: every namespace (it only ever removes what this machine\'s project made)',
    )
    request_timeout: float = Field(default=30.0, gt=0, description="seconds per API request")
    trace: bool = Field(
        default=False, description="print every API request to stderr (QWEX_K8S_TRACE=1)"
    )

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if value in (SNAPSHOT, IMAGE) or (value.startswith("pvc:") and len(value) > 4):
            return value
        raise ValueError(f"code must be snapshot, image or pvc:<claim name>, not {value!r}")

    @property
    def pvc(self) -> str | None:
        return self.code[4:] if self.code.startswith("pvc:") else None
