"""The qwex plugin of the Docker backend (entry point `docker` in the group `qwex`).

Imported whenever qwex starts, even for `qwex --help`, so it imports neither
the docker SDK nor the runner: the runner is registered by name and the
commands import what they need when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.garbage import Garbage
    from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "docker",
        "qwex_docker.runner:DockerRunner",
        description="a container of any image, the qwex agent mounted from the host",
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    register("docker", "qwex_docker.settings:DockerSettings")


@hookimpl
def qwex_collect_garbage(config: QwexConfig, dry_run: bool) -> list[Garbage]:
    """`qwex gc`: containers labelled `qwex.run-id` whose run is final or unknown."""
    from qwex_docker import gc
    from qwex_docker.client import connect
    from qwex_docker.settings import DockerSettings

    settings = config.section("docker", DockerSettings)
    return gc.collect(connect(settings.base_url, settings.timeout), dry_run=dry_run)
