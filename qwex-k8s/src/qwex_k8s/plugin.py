"""The qwex plugin of the Kubernetes backend (entry point `k8s` in the group `qwex`).

Imported whenever qwex starts, so it imports neither the kubernetes client nor the
runner: the runner is registered by name and the commands import what they need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    import click
    from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "k8s",
        "qwex_k8s.runner:KubernetesRunner",
        description="a Kubernetes Job of any image (queued by Kueue with --queue)",
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    from qwex_k8s.settings import K8sSettings

    register("k8s", K8sSettings)


@hookimpl
def qwex_register_commands(cli: click.Group) -> None:
    from qwex_k8s.commands import k8s

    cli.add_command(k8s)
