"""From a run to the container that runs it: mounts, user, env, resources, labels.

Pure functions of the run and a few facts about the host, so that what qwex
asks Docker for can be read (and tested) in one place. The container's
command is the mounted agent, which runs the user's command exactly as the
local backend does: the image's entrypoint is not used.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qwex_core
from qwex_agent.locate import LAUNCHER, MOUNT
from qwex_core.agent.main import command_line
from qwex_core.errors import SpecError
from qwex_core.lifecycle import STOP_MARGIN
from qwex_core.models import JobSpec, Run
from qwex_core.ownership import owner_token
from qwex_core.workers import agent_workers_command

RUN_DIR = "/qwex-run"
"""Where the host's run directory is mounted: the agent writes run.json and the logs there."""
IMAGE_USER = "image"
"""`container.user = "image"` keeps the image's own USER instead of the invoking user."""

SECRET_ENV_FILE = "secret-env.json"
"""In the run directory, while the container starts: the job's secret env, which the agent
reads and deletes (a container's own env would show the values in `docker inspect`)."""

LABEL_RUN_ID = "qwex.run-id"
LABEL_PROJECT = "qwex.project"
LABEL_RUN_DIR = "qwex.run-dir"
LABEL_BACKEND = "qwex.backend"
LABEL_VERSION = "qwex.version"
LABEL_OWNER = "qwex.owner"
"""`qwex_core.ownership.owner_token` of the project: `qwex gc` removes only what it proves."""


@dataclass(frozen=True)
class HostFacts:
    """What the container plan needs to know about where qwex runs."""

    project_dir: Path
    run_dir: Path
    agent_dir: Path
    default_network: str | None
    uid_gid: str

    @classmethod
    def here(
        cls, project_dir: Path, run_dir: Path, agent_dir: Path, network: str | None
    ) -> HostFacts:
        return cls(project_dir, run_dir, agent_dir, network, f"{os.getuid()}:{os.getgid()}")

    @property
    def gid(self) -> str:
        return self.uid_gid.partition(":")[2]


def container_name(run_id: str) -> str:
    return f"qwex-{run_id}"


def container_workdir(spec: JobSpec, project_dir: Path) -> str:
    """The directory the command starts in, inside the container.

    `spec.workdir` is a host directory; when it lies in the project, the
    command starts at the same place in the mounted project."""
    base = spec.container.workdir
    if not spec.workdir:
        return base
    host = (project_dir / spec.workdir).resolve()
    project = project_dir.resolve()
    if not spec.container.mount_project or not host.is_relative_to(project):
        raise SpecError(
            f"workdir {spec.workdir} is not inside the project {project}, which is what the "
            f"container sees (at {base}); set container.workdir to a path in the image instead"
        )
    rel = host.relative_to(project).as_posix()
    return base if rel == "." else posixpath.join(base, rel)


def host_path(source: str, project_dir: Path) -> Path:
    """A mount source as an absolute host path (relative ones are relative to the project)."""
    return (project_dir / Path(source).expanduser()).resolve()


def check(spec: JobSpec, project_dir: Path) -> None:
    """Raise `SpecError` for a job this backend cannot run, before anything is created."""
    if not spec.container.image:
        raise SpecError(
            "the docker backend needs an image: pass --image IMAGE or set "
            "`image` in [tool.qwex] (or a profile)"
        )
    workdir = container_workdir(spec, project_dir)
    targets = [workdir] + [m.target for m in spec.mounts]
    for target in targets:
        if not target.startswith("/"):
            raise SpecError(f"container path {target!r} must be absolute")
        normal = posixpath.normpath(target)
        if normal in (MOUNT, RUN_DIR) or normal.startswith((MOUNT + "/", RUN_DIR + "/")):
            raise SpecError(
                f"container path {target} is reserved for the qwex agent ({MOUNT}, {RUN_DIR})"
            )
    for mount in spec.mounts:
        if not host_path(mount.source, project_dir).exists():
            raise SpecError(
                f"mount source {mount.source} does not exist (mounting it at {mount.target})"
            )


def agent_command(run: Run) -> list[str]:
    """The container's command: the mounted agent, then the user's command."""
    launcher = (f"{MOUNT}/{LAUNCHER}",)
    return command_line(
        launcher,
        run_dir=RUN_DIR,
        grace=run.spec.grace_period,
        command=agent_workers_command(launcher, RUN_DIR, run.spec),
        secret_env=f"{RUN_DIR}/{SECRET_ENV_FILE}" if run.spec.secret_env else None,
    )


def labels(run: Run, facts: HostFacts) -> dict[str, str]:
    """The user's labels plus the ones that let any qwex process find the run (they win)."""
    return {
        **run.spec.labels,
        LABEL_RUN_ID: run.id,
        LABEL_PROJECT: str(facts.project_dir),
        LABEL_RUN_DIR: str(facts.run_dir),
        LABEL_BACKEND: run.backend,
        LABEL_VERSION: qwex_core.__version__,
        LABEL_OWNER: owner_token(facts.project_dir) or "",
    }


def mounts(run: Run, facts: HostFacts) -> list[dict[str, Any]]:
    """Bind mounts in Engine API form: agent (read-only), run directory, project, extras."""
    spec = run.spec
    binds = [
        _bind(facts.agent_dir, MOUNT, read_only=True),
        _bind(facts.run_dir, RUN_DIR, read_only=False),
    ]
    if spec.container.mount_project:
        binds.append(
            _bind(
                facts.project_dir,
                spec.container.workdir,
                read_only=spec.container.read_only_project,
            )
        )
    binds += [
        _bind(host_path(m.source, facts.project_dir), m.target, read_only=m.read_only)
        for m in spec.mounts
    ]
    return binds


def _bind(source: Path, target: str, *, read_only: bool) -> dict[str, Any]:
    return {"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": read_only}


def resources(spec: JobSpec) -> dict[str, Any]:
    """CPU, memory and GPU requests as docker-py host-config arguments."""
    out: dict[str, Any] = {}
    res = spec.resources
    if res.cpu is not None:
        out["nano_cpus"] = int(res.cpu * 1e9)
    if res.memory_bytes is not None:
        out["mem_limit"] = res.memory_bytes
        out["memswap_limit"] = res.memory_bytes  # no swap: past the limit the OOM killer acts
    if res.gpu:
        out["device_requests"] = [{"Count": res.gpu, "Capabilities": [["gpu"]]}]
    return out


def user(spec: JobSpec, facts: HostFacts) -> str | None:
    """uid:gid for the container: the job's, else the invoking user's (None: the image's)."""
    chosen = spec.container.user or facts.uid_gid
    return None if chosen == IMAGE_USER else chosen


def shares_run_dir(spec: JobSpec, uid_gid: str) -> bool:
    """Whether the container runs as another user than the invoking one (`uid_gid`), who then
    reaches the run directory through the invoking user's own group (`qwex_docker.sharing`)."""
    return (spec.container.user or uid_gid) != uid_gid


def group_add(spec: JobSpec, facts: HostFacts) -> list[str] | None:
    """The invoking user's group, added to the container's when it runs as someone else."""
    return [facts.gid] if shares_run_dir(spec, facts.uid_gid) else None


def create_args(
    run: Run, facts: HostFacts, *, auto_remove: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Arguments of `APIClient.create_container` and of `create_host_config`.

    `auto_remove`: the daemon removes the container once it exited, as `docker run --rm`
    does. The agent has recorded the end (and the logs) in the run store by then."""
    spec = run.spec
    host_config: dict[str, Any] = {
        "auto_remove": auto_remove,
        "mounts": mounts(run, facts),
        "network_mode": spec.container.network or facts.default_network,
        "group_add": group_add(spec, facts),
        **resources(spec),
    }
    create: dict[str, Any] = {
        "image": spec.container.image,
        "name": container_name(run.id),
        "entrypoint": agent_command(run)[:1],
        "command": agent_command(run)[1:],
        "working_dir": container_workdir(spec, facts.project_dir),
        "user": user(spec, facts),
        "environment": {**spec.env, "QWEX_RUN_ID": run.id},
        "labels": labels(run, facts),
        # Docker SIGKILLs the agent itself past the grace period plus core's margin.
        "stop_timeout": int(spec.grace_period + STOP_MARGIN + 0.999),
        "detach": True,
        "stdin_open": False,
        "tty": False,
    }
    return create, {k: v for k, v in host_config.items() if v is not None}
