"""A job from configuration, a profile and overrides: the one way a `JobSpec` is built.

The CLI, the conformance suite and the server all call `build_job`, so a flag,
a profile key and a `QWEX_*` variable mean the same wherever a job comes from.
Overrides (command-line flags, `service_for(backend=..., image=...)`) are
configuration layers of their own (`overrides`), the highest in precedence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_core.errors import SpecError

if TYPE_CHECKING:
    from qwex_core.config import Key, QwexConfig
    from qwex_core.models import JobSpec

OVERRIDES: dict[str, Key] = {
    "backend": ("backend",),
    "image": ("image",),
    "cpu": ("resources", "cpu"),
    "memory": ("resources", "memory"),
    "gpu": ("resources", "gpu"),
    "workdir": ("workdir",),
    "grace_period": ("grace_period",),
    "pull": ("container", "pull"),
    "queue": ("k8s", "queue"),
    "priority": ("k8s", "priority_class"),
    "partition": ("slurm", "partition"),
    "time": ("slurm", "time"),
}
"""Each override (named as its flag: `--grace-period` is `grace_period`) and the
configuration key it sets. `queue` and `priority` set the k8s backend's section (a Kueue
LocalQueue and WorkloadPriorityClass), `partition` and `time` the slurm backend's; without
that backend they are ignored with a warning."""
MAPPINGS: dict[str, Key] = {
    "env": ("env",),
    "labels": ("labels",),
    "secrets": ("remote", "secrets"),
}
"""The overrides that take a mapping, and the table each key of it goes into. `secrets`
(`--secret NAME[=ENVVAR]`: env var -> secret name) is the remote backend's: a qwex server
keeps the values."""


def flag_name(override: str) -> str:
    return "--" + override.replace("_", "-")


def overrides(values: Mapping[str, Any]) -> dict[Key, tuple[Any, str]]:
    """Configuration keys set by overrides, each with its source (the flag's name), for
    `load_config(flags=...)`. None means "not given"."""
    out: dict[Key, tuple[Any, str]] = {}
    for name, value in values.items():
        if value is None:
            continue
        if name in MAPPINGS:
            flag = flag_name(name.removesuffix("s") if name == "secrets" else name)
            out.update({(*MAPPINGS[name], key): (text, flag) for key, text in value.items()})
        elif name in OVERRIDES:
            out[OVERRIDES[name]] = (value, flag_name(name))
        else:
            known = ", ".join([*MAPPINGS, *OVERRIDES])
            raise SpecError(f"unknown job override {name!r}; known: {known}")
    return out


def build_job(
    config: QwexConfig,
    command: Sequence[str],
    *,
    project_dir: Path,
    name: str | None = None,
    cwd: Path | None = None,
    **extra: Any,
) -> JobSpec:
    """The job that runs `command` with the resolved `config`.

    The command starts in `workdir` when configured, else in `cwd` (default: the
    current directory) when that lies below the project (in containers, at the same
    place in the mounted project). `extra` adds to the job: mappings (`env`) and
    lists (`mounts`) extend the configured ones, other values replace them."""
    from pydantic import BaseModel

    from qwex_core.models import JobSettings, JobSpec

    core = config.core
    container = core.container.model_copy(update={"image": core.image or core.container.image})
    data: dict[str, Any] = {field: getattr(core, field) for field in JobSettings.model_fields}
    data.update(container=container, command=list(command), backend=core.backend, name=name)
    if not core.workdir and container.mount_project:
        data["workdir"] = _below(project_dir, cwd or Path.cwd())
    for key, value in extra.items():
        if isinstance(value, Mapping):
            current = data.get(key) or {}
            if isinstance(current, BaseModel):  # a table such as `container`: merge its fields
                current = current.model_dump()
            data[key] = {**current, **value}
        elif isinstance(value, list):
            data[key] = [*data.get(key, []), *value]
        else:
            data[key] = value
    return JobSpec.model_validate(data)


def _below(project_dir: Path, cwd: Path) -> str | None:
    """`cwd` when it is a folder below the project, else None (the project directory)."""
    cwd = cwd.resolve()
    project = project_dir.resolve()
    return str(cwd) if cwd != project and cwd.is_relative_to(project) else None
