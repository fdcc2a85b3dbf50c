"""The qwex plugin of the Kubernetes backend (entry point `k8s` in the group `qwex`).

Imported whenever qwex starts, so it imports neither the kubernetes client nor the
runner: the runner is registered by name, and `qwex gc` imports the client only when used.
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
        "k8s",
        "qwex_k8s.runner:KubernetesRunner",
        description="a Kubernetes Job of any image (queued by Kueue with --queue)",
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    register("k8s", "qwex_k8s.settings:K8sSettings")


@hookimpl
def qwex_collect_garbage(config: QwexConfig, dry_run: bool) -> list[Garbage] | None:
    """`qwex gc`: this machine's qwex Jobs, pods and Secrets whose run is over, and snapshot
    ConfigMaps no Job owns, in the configured namespace and `gc_namespaces`; None when no
    cluster is configured."""
    import os
    from dataclasses import replace

    from qwex_k8s import gc
    from qwex_k8s.client import connect, kubeconfig_file
    from qwex_k8s.settings import K8sSettings

    settings = config.section("k8s", K8sSettings)
    if kubeconfig_file(settings) is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None  # no cluster here: nothing can have been left on one
    conn = connect(settings)
    found = []
    for namespace in gc.namespaces(conn.api, conn.namespace, settings.gc_namespaces):
        for item in gc.collect(conn.api, namespace, dry_run=dry_run):
            if namespace != conn.namespace:  # say where, beyond the configured namespace
                item = replace(item, name=f"{namespace}/{item.name}")
            found.append(item)
    return found
