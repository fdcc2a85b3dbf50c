"""`[tool.qwex.docker]`: how qwex reaches the Docker daemon and where it finds the agent.

What to run (image, workdir, user, network, resources, mounts) is the job's
`ContainerConfig` in qwex-core; this section holds only what is about the
daemon and this backend's own behaviour.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DockerSettings(BaseModel):
    """Validated `[tool.qwex.docker]` table (also `QWEX_DOCKER_<KEY>` variables)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        default=None,
        description="daemon address, e.g. unix:///var/run/docker.sock (default: DOCKER_HOST, "
        "else the local socket)",
    )
    timeout: float = Field(
        default=60.0, gt=0, description="seconds to wait for one Docker API call"
    )
    network: str | None = Field(
        default=None,
        description="network mode when the job sets none, e.g. none, host, bridge "
        "(default: the daemon's default)",
    )
    agent_dir: str | None = Field(
        default=None,
        description="directory holding agent bundles as <os>-<arch>/ (default: the user "
        "cache, then the qwex-docker-agents package)",
    )
    keep_containers: bool = Field(
        default=False,
        description="keep finished containers for debugging instead of removing them",
    )
