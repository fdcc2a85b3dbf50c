"""Finding the Helm binary and rendering the server's chart with it.

Helm is built from its Go module by .ci/k8s/build-helm.sh (run by `nox -s cluster -- up`)
into a folder keyed by its version; `QWEX_HELM` names another binary, else one on PATH is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "qwex-server"
HOW_TO = "build it with `bash .ci/k8s/build-helm.sh` (as root; `nox -s cluster -- up` does), or set QWEX_HELM"
TOKENS = {"tokens": {"existingSecret": "qwex-tokens"}}
"""The one value the chart requires: the Secret its tokens come from."""


def cached_binary(variable: str, name: str, env: str) -> Path | None:
    """`$env`, else `name` in the folder .ci/k8s/versions.sh names `variable`, else PATH's."""
    explicit = os.environ.get(env)
    if explicit:
        return Path(explicit)
    versions = ROOT / ".ci" / "k8s" / "versions.sh"
    built = subprocess.run(
        ["bash", "-c", f'source "{versions}" && echo "${variable}/{name}"'],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if built and Path(built).is_file():
        return Path(built)
    found = shutil.which(name)
    return Path(found) if found else None


def helm_path() -> Path | None:
    """The Helm binary: QWEX_HELM, else the cached build of .ci/k8s/versions.sh, else PATH."""
    return cached_binary("QWEX_HELM_BIN", "helm", "QWEX_HELM")


def kubectl_path() -> Path | None:
    """kubectl: QWEX_KUBECTL, else the test cluster's build, else PATH's."""
    return cached_binary("QWEX_K8S_BIN", "kubectl", "QWEX_KUBECTL")


def kubeconfig_path() -> Path:
    """The test cluster's kubeconfig, as tests/k8s finds it (QWEX_K8S_KUBECONFIG first)."""
    explicit = os.environ.get("QWEX_K8S_KUBECONFIG")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("QWEX_K8S_STATE", "/var/lib/qwex-k8s")) / "kubeconfig"


def run_helm(helm: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def template(helm: Path, values: dict[str, Any], namespace: str = "qwex") -> list[dict[str, Any]]:
    """Every manifest `helm template` renders from the chart with `values` (a YAML file)."""
    result = template_run(helm, values, namespace)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def template_run(
    helm: Path, values: dict[str, Any], namespace: str = "qwex"
) -> subprocess.CompletedProcess[str]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        return run_helm(
            helm, "template", "qwex", str(CHART), "--namespace", namespace, "--values", f.name
        )


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]
