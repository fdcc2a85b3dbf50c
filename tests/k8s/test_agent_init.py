"""The agent image on the real cluster, with plain objects (no qwex runner): an init container
copies the agent into an emptyDir, the busybox-only main container runs it on a snapshot from
a ConfigMap, and the final record comes back as the container's termination message."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from k8s_support import Cluster, body, wait_for
from qwex_core.agent import image_name
from qwex_core.agent.main import command_line, copy_command
from qwex_core.snapshot import make_snapshot

pytestmark = [pytest.mark.k8s, pytest.mark.live]

LAUNCHER = ("/qwex/bin/qwex",)
HOW_TO = "build and load it with `nox -s agent_image`"


def agent_image(cluster: Cluster) -> str:
    """The agent image, when the node has it (QWEX_K8S_AGENT_IMAGE on another cluster)."""
    image = os.environ.get("QWEX_K8S_AGENT_IMAGE", image_name())
    names = {
        name
        for node in cluster.core.list_node().items
        for img in (node.status.images if node.status else None) or []
        for name in img.names or []
    }
    if not any(n == image or n.endswith(f"/{image}") for n in names):
        message = f"the agent image {image} is not on the cluster's node: {HOW_TO}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this is an error", pytrace=False)
        pytest.skip(message)
    return image


def small(
    image: str, name: str, command: list[str], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
        "volumeMounts": mounts,
    }


def test_init_container_copies_the_agent_which_runs_the_snapshot(
    cluster: Cluster, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.sh").write_text('#!/bin/sh\necho "hello from $(cat data.txt)"\nexit 3\n')
    (project / "hello.sh").chmod(0o755)
    (project / "data.txt").write_text("the snapshot\n")
    snap = make_snapshot(project, limit=900 << 10)
    name = cluster.name("agent")
    cluster.core.create_namespaced_config_map(
        cluster.namespace,
        body(
            {
                "metadata": {"name": name},
                "binaryData": {"snapshot.tar.gz": base64.b64encode(snap.data).decode()},
                "immutable": True,
            }
        ),
    )
    try:
        main = command_line(
            LAUNCHER,
            run_dir="/tmp/run",
            grace=1,
            command=["./hello.sh"],
            quiet=False,
            snapshot="/qwex-snapshot/snapshot.tar.gz",
            termination_log="/dev/termination-log",
        )
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "ttlSecondsAfterFinished": 300,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "initContainers": [
                            small(
                                agent_image(cluster),
                                "qwex-agent",
                                copy_command(LAUNCHER, "/qwex-install"),
                                [{"name": "agent", "mountPath": "/qwex-install"}],
                            )
                        ],
                        "containers": [
                            {
                                **small(
                                    cluster.busybox,
                                    "main",
                                    main,
                                    [
                                        {"name": "agent", "mountPath": "/qwex", "readOnly": True},
                                        {"name": "code", "mountPath": "/qwex-snapshot"},
                                    ],
                                ),
                                "workingDir": "/work",
                            }
                        ],
                        "volumes": [
                            {"name": "agent", "emptyDir": {}},
                            {"name": "code", "configMap": {"name": name}},
                        ],
                    }
                },
            },
        }
        cluster.create_job(job)

        def terminated() -> Any:
            pods = cluster.job_pods(name)
            statuses = (pods[0].status.container_statuses or []) if pods else []
            return next((s.state.terminated for s in statuses if s.state.terminated), None)

        state = wait_for(f"the main container of Job {name} to end", terminated, timeout=120)
        (pod,) = cluster.job_pods(name)
        log = cluster.core.read_namespaced_pod_log(
            pod.metadata.name, cluster.namespace, container="main"
        )
        assert state.exit_code == 3, log
        assert log == "hello from the snapshot\n"
        final = json.loads(state.message)
        assert final["status"] == "failed" and final["exit_code"] == 3
        assert final["reason"] == "exit code 3" and final["id"] == "run"
        assert final["started_at"] <= final["finished_at"]
    finally:
        cluster.core.delete_namespaced_config_map(name, cluster.namespace)
