"""linux/arm64 on the test cluster's amd64 node (issue 25): the agent image as one OCI index
holding both platforms, and a job in an arm64 image run under the node's binfmt qemu.

`nox -s agent_image` writes the index (`qwex agent image --platform linux/amd64 --platform
linux/arm64 --oci-archive`) and loads it into the node's containerd with every platform;
`nox -s images` + `.ci/k8s/cluster.sh load` bring the arm64 busybox image.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from k8s_support import Cluster, configure

pytestmark = [pytest.mark.k8s, pytest.mark.live]

Qwex = Callable[..., subprocess.CompletedProcess[str]]
BUSYBOX_ARM64 = os.environ.get("QWEX_K8S_BUSYBOX_ARM64_IMAGE", "qwex-test/busybox-arm64:latest")


def node_has(cluster: Cluster, image: str) -> bool:
    names = {
        name
        for node in cluster.core.list_node().items
        for img in (node.status.images if node.status else None) or []
        for name in img.names or []
    }
    return any(n == image or n.endswith(f"/{image}") for n in names)


AGENT_IMAGE_ARM64 = os.environ.get(
    "QWEX_K8S_AGENT_IMAGE_ARM64", "qwex.local/qwex-agent-arm64:0.1.0"
)
"""The arm64 agent alone (`nox -s agent_image`): the amd64 node takes the amd64 agent of the
index, so this image is how a pod gets the arm64 agent here."""


def require(cluster: Cluster, image: str, how: str) -> None:
    if not node_has(cluster, image):
        message = f"{image} is not on the node: {how}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this is an error", pytrace=False)
        pytest.skip(message)


@pytest.mark.parametrize(
    ("agent_image", "agent_arch"),
    [(None, "amd64"), (AGENT_IMAGE_ARM64, "arm64")],
    ids=["index-picks-the-nodes-agent", "arm64-agent"],
)
def test_a_job_in_an_arm64_image_runs_on_the_amd64_node(
    agent_image: str | None, agent_arch: str, project: Path, cluster: Cluster, qwex: Qwex
) -> None:
    """`qwex run -b k8s --image ARM64_IMAGE` on this amd64 node: the command is arm64, run by
    qemu through binfmt_misc, and its output and exit code come back. With the default agent
    image (the index of both platforms) containerd hands the init container the node's
    platform, so the agent copied into the pod is amd64 (it runs natively and starts the arm64
    command); with the arm64 agent image, the arm64 agent is copied by an arm64 init
    container and runs under qemu too."""
    require(cluster, BUSYBOX_ARM64, f"`bash .ci/k8s/cluster.sh load {BUSYBOX_ARM64}`")
    settings = {"agent_image": agent_image} if agent_image else {}
    if agent_image:
        require(cluster, agent_image, "`nox -s agent_image`")
    configure(project, cluster, **settings)
    result = qwex(
        "run",
        "--image",
        BUSYBOX_ARM64,
        "--",
        "sh",
        "-c",
        'uname -m; grep -o \'"arch": "[a-z0-9]*"\' /qwex/manifest.json; exit 5',
        timeout=240,
    )
    expected = f'aarch64\n"arch": "{agent_arch}"\n'
    assert (result.returncode, result.stdout) == (5, expected), result.stderr
    run = json.loads(qwex("list", "--json", check=True).stdout)[0]
    assert run["status"] == "failed" and run["exit_code"] == 5
