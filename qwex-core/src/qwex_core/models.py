"""The runner models: what to run (`JobSpec`) and what happened (`Run`).

API-client settings (server URL, token) are not here: they belong to
qwex-remote.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qwex_core.agent.record import FINAL_STATUSES


class RunStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    """The supervisor vanished without recording a final state."""

    @property
    def is_final(self) -> bool:
        return self.value in FINAL_STATUSES


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]i?[bB]?|[bB])?\s*$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}


def parse_memory(text: str | int) -> int:
    """Bytes in a memory size: `512Mi`, `4G`, `2gb`, `1073741824`."""
    if isinstance(text, int):
        return text
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 512Mi, 4Gi, 2G)")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(float(match.group(1)) * _UNITS[unit])


def check_env_name(name: str) -> str:
    """`name` when a process can be given it as an environment variable, else a ValueError
    naming it: `NAME=VALUE` is how the environment is passed, so a name cannot be empty or
    hold `=` (nor a NUL, which ends the string)."""
    if not name or "=" in name or "\x00" in name:
        raise ValueError(
            f"{name!r} cannot name an environment variable: a name is not empty and holds "
            "no '=' and no NUL"
        )
    return name


def check_env(env: dict[str, str]) -> dict[str, str]:
    """`env` when every name and value can be passed to a process (a NUL cannot)."""
    for name, value in env.items():
        check_env_name(name)
        if "\x00" in value:
            raise ValueError(f"the value of environment variable {name!r} holds a NUL")
    return env


class _Model(BaseModel):
    # defer_build: schemas are built on first use, so a command pays only for the models it uses.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, defer_build=True)


class ResourceRequirements(_Model):
    """What a run asks for. Backends translate it (Docker: nano_cpus, mem_limit, device_requests)."""

    cpu: float | None = Field(default=None, gt=0, description="CPU cores, e.g. 0.5 or 4")
    memory: str | None = Field(default=None, description="memory limit, e.g. 512Mi or 4Gi")
    gpu: int | None = Field(default=None, ge=0, description="number of GPUs")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is None:
            return None
        parse_memory(str(value))  # what is kept is parsed again later: check that (not True)
        return str(value)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory)


class Mount(_Model):
    """A host path made visible to the run (containers only)."""

    source: str
    """The host path (resolved and checked by the backend: a server refuses what its
    configuration does not allow)."""
    target: str
    """Where the command sees it, an absolute path in the container."""
    read_only: bool = False
    """Mounted read-only (`SRC:DST:ro`)."""

    @classmethod
    def parse(cls, text: str) -> Mount:
        """`SRC:DST[:ro|rw]`, as `docker run -v` writes it."""
        parts = text.split(":")
        if (
            len(parts) not in (2, 3)
            or not all(parts[:2])
            or (len(parts) == 3 and parts[2] not in ("ro", "rw"))
        ):
            raise ValueError(f"mount {text!r} is not SRC:DST or SRC:DST:ro")
        return cls(source=parts[0], target=parts[1], read_only=len(parts) == 3 and parts[2] == "ro")


class ContainerConfig(_Model):
    """How a container backend runs the command; ignored by the local runner."""

    image: str | None = None
    """The image the command runs in (`--image`); a container backend refuses a job without one."""
    workdir: str = "/workspace"
    """Where the project directory is mounted and the command starts."""
    mount_project: bool = True
    """Mount the project directory at `workdir` (Kubernetes: unpack the code snapshot there)."""
    read_only_project: bool = False
    """Mount the project directory read-only."""
    user: str | None = None
    """uid:gid to run as; default: the invoking user's."""
    network: str | None = None
    """The container's network (Docker's `--network`, e.g. `none`); default: the runtime's."""
    pull: bool = False
    """Pull the image before the run even when it is present."""


class JobSettings(_Model):
    """The settings of a job that configuration can give too: `[tool.qwex]` declares them
    through `CoreSettings`, which extends this model, and `JobSpec` carries them."""

    workdir: str | None = Field(
        default=None,
        description="host directory the command starts in (default: the project directory)",
    )
    env: dict[str, str] = Field(default_factory=dict)
    """Environment given to the command (`-e NAME=VALUE`), written in the run record."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Free-form `-l key=value` labels, for filtering and for what the backend creates."""
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    """What the run asks for: cpu, memory, gpu (`--cpu`, `--memory`, `--gpu`)."""
    mounts: list[Mount] = Field(default_factory=list)
    """Host paths made visible to a container (`-v SRC:DST[:ro]`)."""
    container: ContainerConfig = Field(default_factory=ContainerConfig)
    """How a container backend runs the command; ignored by the local runner."""
    grace_period: float = Field(
        default=10.0, ge=0, description="seconds from SIGTERM to SIGKILL on cancel"
    )

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        return check_env(value)

    @field_validator("mounts", mode="before")
    @classmethod
    def _mount_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [Mount.parse(v) if isinstance(v, str) else v for v in value]
        return value


_ARRAY = re.compile(r"^\s*(\d+)(?:\s*-\s*(\d+))?\s*(?:%\s*(\d+))?\s*$")


class ArraySpec(_Model):
    """`--array FIRST-LAST[%LIMIT]`: the command once per index (`QWEX_ARRAY_INDEX`), at
    most `limit` at once (Slurm's `--array`)."""

    first: int = Field(ge=0)
    last: int = Field(ge=0)
    limit: int | None = Field(default=None, ge=1)
    """Most tasks running at once; None: all of them."""

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    @property
    def parallel(self) -> int:
        """How many tasks run at once."""
        return min(self.count, self.limit or self.count)

    @property
    def indexes(self) -> range:
        return range(self.first, self.last + 1)

    @classmethod
    def parse(cls, text: str) -> ArraySpec:
        """`0-99%10`, `0-19`, `5` (one index)."""
        match = _ARRAY.match(text)
        if not match:
            raise ValueError(f"array {text!r} is not FIRST-LAST[%LIMIT] (e.g. 0-99%10)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"array {text!r}: {last} comes before {first}")
        limit = int(match.group(3)) if match.group(3) is not None else None
        if limit == 0:
            raise ValueError(f"array {text!r}: the limit after % is at least 1")
        return cls(first=first, last=last, limit=limit)

    def __str__(self) -> str:
        text = f"{self.first}-{self.last}"
        return f"{text}%{self.limit}" if self.limit else text


class JobSpec(JobSettings):
    """Everything a runner needs to start a command."""

    command: list[str] = Field(min_length=1)
    """The program and its arguments (`qwex run -- CMD ARGS...`)."""
    backend: str = "local"
    """The registered name of the runner that runs it."""
    name: str | None = None
    """The user's name for the run (`--name`); commands take it where they take an id."""
    nodes: int = Field(default=1, ge=1)
    """Workers running the command together (`--nodes`), each with the rendezvous
    environment (`MASTER_ADDR`, `WORLD_SIZE`, `RANK`...): one run, one worker per node."""
    procs_per_node: int = Field(default=1, ge=1)
    """Processes each worker's launcher starts (`--procs-per-node`, torchrun's
    `--nproc-per-node`): it sets `LOCAL_WORLD_SIZE` and `WORLD_SIZE`, qwex starts one."""
    array: ArraySpec | None = None
    """The command once per index (`--array 0-99%10`), as one run with a task per index."""
    secret_env: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    """Environment whose values must not be written anywhere (a qwex server's secrets): never
    dumped (so never in `run.json`), never in the repr. A runner that delivers it without
    writing it down sets `Runner.accepts_secret_env`; core refuses it to any other. Not
    checked by a validator (a validation error shows its input: the values); `RunService.submit`
    checks its names."""

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the command is empty")
        return value

    @field_validator("array", mode="before")
    @classmethod
    def _array(cls, value: Any) -> Any:
        return ArraySpec.parse(value) if isinstance(value, str) else value

    @property
    def workers(self) -> int:
        """How many workers (or array tasks) the run has: 1 for a plain run."""
        return self.array.count if self.array is not None else self.nodes


class Transition(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: RunStatus
    """The status entered."""
    at: datetime
    """When (UTC)."""
    reason: str | None = None
    """Why, in the words of whoever recorded it."""


class Run(BaseModel):
    """A run record, as stored in `.qwex/runs/<id>/run.json`."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    id: str
    """A UUIDv7 (time-ordered); people use its last 12 hex digits or a unique prefix."""
    backend: str
    """The runner's registered name (the same as `spec.backend`)."""
    spec: JobSpec
    """The job as submitted."""
    status: RunStatus = RunStatus.PENDING
    """pending, queued, running, then succeeded, failed, cancelled or lost."""
    reason: str | None = None
    """Why it is in its status (`exit code 3`, `OOMKilled`, Kueue's message...)."""
    created_at: datetime
    """When the record was created (UTC)."""
    started_at: datetime | None = None
    """When the command started, as the far side saw it (UTC)."""
    finished_at: datetime | None = None
    """When it ended (UTC)."""
    exit_code: int | None = None
    """The command's exit code (128 + N for a signal, as a shell shows it)."""
    signal: str | None = None
    """The signal that ended the command (`SIGTERM`), if one did."""
    history: list[Transition] = Field(default_factory=list)
    """Every status it entered, in order, with when and why."""
    pid: int | None = None
    """The pid (and process group) of the command where the agent ran it."""
    agent_pid: int | None = None
    """The agent's pid where it ran (a local or in-container process)."""
    host: str | None = None
    """The machine the run was submitted from."""
    backend_data: dict[str, Any] = Field(default_factory=dict)
    """What the backend needs to find the run again (container id, job name, server URL...)."""

    @property
    def is_final(self) -> bool:
        return self.status.is_final
