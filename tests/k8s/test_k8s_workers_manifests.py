"""The Indexed Jobs of `--nodes` and `--array` runs, validated offline against the official
schema (strict), and what each worker's pod is given: its rank from the pod's index, the
same rendezvous on all, the gang's failure rule, an array's per-index retries."""

from __future__ import annotations

from typing import Any

import pytest
from qwex_core.errors import SpecError
from qwex_k8s import manifests
from qwex_k8s.settings import K8sSettings
from test_k8s_manifests import PROJECT, make_run, render, valid


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    main = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in main["env"]}


INDEX = {"fieldRef": {"fieldPath": f"metadata.annotations['{manifests.INDEX_ANNOTATION}']"}}


def test_nodes_make_an_indexed_job_with_the_rendezvous() -> None:
    run = make_run(nodes=3, resources={"cpu": 0.5})
    job = valid(render(run, queue="q"))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["suspend"] is True  # one Workload for the whole gang, admitted whole
    name = manifests.job_name(run.id)
    assert spec["template"]["spec"]["subdomain"] == name
    env = env_of(job)
    assert env["MASTER_ADDR"] == f"{name}-0.{name}"
    assert (env["MASTER_PORT"], env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == ("29500", "3", "1")
    assert env["RANK"] == env["NODE_RANK"] == env["PET_NODE_RANK"] == INDEX
    assert env["PET_NNODES"] == "3" and env["LOCAL_RANK"] == "0"
    main = spec["template"]["spec"]["containers"][0]
    assert main["resources"]["requests"]["cpu"] == "500m"  # per worker
    rules = spec["podFailurePolicy"]["rules"]
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [0]},
    } in rules


def test_procs_per_node_leaves_rank_to_the_launcher() -> None:
    env = env_of(valid(render(make_run(nodes=2, procs_per_node=4))))
    assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"], env["PET_NPROC_PER_NODE"]) == (
        "8",
        "4",
        "4",
    )
    assert "RANK" not in env and "LOCAL_RANK" not in env
    assert env["NODE_RANK"] == INDEX


def test_the_headless_service_is_owned_by_the_job() -> None:
    run = make_run(nodes=2)
    owner = manifests.owner_reference("qwex-x", "uid-1")
    service = valid(manifests.service_manifest(run, "team", owner))
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["metadata"]["ownerReferences"] == [owner]
    assert service["metadata"]["name"] == manifests.job_name(run.id)
    assert service["spec"]["selector"] == {manifests.LABEL_RUN_ID: run.id}


def test_an_array_is_an_indexed_job_limited_to_its_parallelism() -> None:
    job = valid(render(make_run(array="0-19%3"), retries=1))
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (20, 3, 1)
    assert "backoffLimit" not in spec
    assert env_of(job)["QWEX_ARRAY_INDEX"] == INDEX
    assert "subdomain" not in spec["template"]["spec"]
    assert "MASTER_ADDR" not in env_of(job)


def test_an_array_not_from_zero_is_refused_with_what_to_do() -> None:
    run = make_run(array="5-9%2")
    with pytest.raises(SpecError, match=r"--array 0-4%2 and add 5 to QWEX_ARRAY_INDEX"):
        manifests.check(run.spec, PROJECT, K8sSettings())


def test_a_plain_run_is_unchanged() -> None:
    spec = render()["spec"]
    assert "completionMode" not in spec and "parallelism" not in spec
    assert "MASTER_ADDR" not in env_of(render())
