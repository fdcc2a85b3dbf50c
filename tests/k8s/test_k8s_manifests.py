"""Every manifest the k8s runner can produce, validated offline against the official
schema (kubernetes-validate, strict: an unknown field fails), and the rules a user
relies on: the queue label on the Job only, the agent's init container, the limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from qwex_core.errors import SpecError
from qwex_core.models import JobSpec, Run
from qwex_k8s import manifests
from qwex_k8s.manifests import QUEUE_LABEL, Facts, job_manifest, snapshot_configmap
from qwex_k8s.settings import K8sSettings

SCHEMA = "1.34"
"""The Kubernetes version of the test cluster (manifests use nothing newer)."""
PROJECT = Path("/home/me/project")


def make_run(**spec: Any) -> Run:
    data: dict[str, Any] = {"command": ["python", "train.py"], "backend": "k8s"}
    data.setdefault("container", {"image": "python:3.11"})
    data.update(spec)
    return Run(
        id="01a21d16-05ae-7f6f-9967-d2ac841a99a3",
        backend="k8s",
        spec=JobSpec.model_validate(data),
        created_at=datetime(2026, 11, 27, 12, tzinfo=UTC),
    )


def render(run: Run | None = None, **settings: Any) -> dict[str, Any]:
    config = K8sSettings.model_validate(settings)
    facts = Facts(
        namespace="team",
        project_dir=PROJECT,
        run_dir=PROJECT / ".qwex/runs/x",
        host="laptop",
        snapshot="qwex-code-abc" if config.code == "snapshot" else None,
    )
    return job_manifest(run or make_run(), config, facts)


def valid(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest, after checking it against the schema the way the API server reads it."""
    kubernetes_validate.validate(json.loads(json.dumps(manifest)), SCHEMA, strict=True)
    return manifest


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "defaults (snapshot)": ({}, {}),
    "code in the image": ({}, {"code": "image"}),
    "code on a PVC": ({}, {"code": "pvc:datasets"}),
    "queued with priority": ({}, {"queue": "gpu", "priority_class": "high"}),
    "everything": (
        {
            "resources": {"cpu": 0.5, "memory": "2Gi", "gpu": 2},
            "env": {"A": "1"},
            "grace_period": 30,
            "container": {"image": "python:3.11", "user": "1000:1000", "pull": True},
        },
        {
            "queue": "q",
            "timeout": 3600,
            "retries": 2,
            "service_account": "runner",
            "node_selector": {"pool": "gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "env_from": ["wandb", "hf-token"],
            "shm_size": "8Gi",
            "extra_resources": {"example.com/fpga": "1"},
            "ttl_seconds_after_finished": 600,
        },
    ),
    "no shm, one whole cpu": ({"resources": {"cpu": 1}}, {"shm_size": None}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_job_manifest_is_valid(case: str) -> None:
    spec, settings = CASES[case]
    valid(render(make_run(**spec), **settings))


def test_the_snapshot_configmap_is_valid_and_immutable() -> None:
    cm = valid(snapshot_configmap("ab" * 32, b"\x1f\x8b data", "team"))
    assert cm["immutable"] is True
    assert cm["metadata"]["name"] == manifests.snapshot_name("ab" * 32)


def test_the_owner_reference_is_valid() -> None:
    cm = snapshot_configmap("cd" * 32, b"x", "team")
    cm["metadata"]["ownerReferences"] = [manifests.owner_reference("qwex-x", "uid-1")]
    valid(cm)


def test_a_queue_labels_the_job_never_the_pod_template_and_suspends_it() -> None:
    job = render(queue="gpu", priority_class="high")
    assert job["metadata"]["labels"][QUEUE_LABEL] == "gpu"
    assert job["metadata"]["labels"][manifests.PRIORITY_LABEL] == "high"
    assert job["spec"]["suspend"] is True
    template = job["spec"]["template"]["metadata"]["labels"]
    assert QUEUE_LABEL not in template and manifests.PRIORITY_LABEL not in template
    unqueued = render()
    assert QUEUE_LABEL not in unqueued["metadata"]["labels"]
    assert unqueued["spec"]["suspend"] is False


def test_the_agent_reaches_the_pod_through_an_init_container() -> None:
    job = render(agent_image="registry.example/qwex/agent:1")
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == "registry.example/qwex/agent:1"
    assert init["command"] == ["/qwex/bin/qwex", "agent", "copy", "/qwex-install"]
    (main,) = pod["containers"]
    assert main["image"] == "python:3.11"  # the user's image, untouched
    assert main["command"][0] == "/qwex/bin/qwex"
    assert main["command"][-3:] == ["--", "python", "train.py"]
    assert {"name": "qwex-agent", "mountPath": "/qwex", "readOnly": True} in main["volumeMounts"]
    assert pod["restartPolicy"] == "Never"


def test_job_name_fits_a_label_and_names_the_run() -> None:
    job = render()
    name = job["metadata"]["name"]
    assert len(name) <= 63 and make_run().id in name
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[manifests.MANAGED_BY] == "qwex"
        assert labels[manifests.LABEL_RUN_ID] == make_run().id


def test_failure_policy_retries_deadline_and_ttl() -> None:
    job = render(retries=0)["spec"]
    assert job["backoffLimit"] == 0
    assert "activeDeadlineSeconds" not in job
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [125]
    job = render(retries=3, timeout=60, ttl_seconds_after_finished=5)["spec"]
    assert (job["backoffLimit"], job["activeDeadlineSeconds"], job["ttlSecondsAfterFinished"]) == (
        3,
        60,
        5,
    )


def test_resources_gpus_and_extended_resources_go_in_limits() -> None:
    run = make_run(resources={"cpu": 0.25, "memory": "1Gi", "gpu": 4})
    main = render(run, extra_resources={"example.com/fpga": "1"})["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert main["resources"]["requests"] == {"cpu": "250m", "memory": str(2**30)}
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert main["resources"]["limits"]["example.com/fpga"] == "1"
    assert "nvidia.com/gpu" not in main["resources"]["requests"]


def test_pod_settings_from_the_config_reach_the_pod() -> None:
    job = render(
        service_account="trainer",
        node_selector={"pool": "a100"},
        tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        env_from=["wandb"],
        shm_size="4Gi",
    )
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    assert pod["nodeSelector"] == {"pool": "a100"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    main = pod["containers"][0]
    assert main["envFrom"] == [{"secretRef": {"name": "wandb"}}]
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in main["volumeMounts"]


def test_code_modes_mount_the_working_directory() -> None:
    snap = render()["spec"]["template"]["spec"]
    assert {"name": "qwex-code", "configMap": {"name": "qwex-code-abc"}} in snap["volumes"]
    pvc = render(code="pvc:data")["spec"]["template"]["spec"]
    assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "data"}} in pvc["volumes"]
    image = render(code="image")["spec"]["template"]["spec"]
    assert not any(v["name"] in ("workspace", "qwex-code") for v in image["volumes"])


def test_a_sub_folder_of_a_snapshot_is_entered_by_the_agent() -> None:
    """No shell needed (an image FROM scratch has none): the agent changes directory."""
    run = make_run(workdir=str(PROJECT / "src"))
    main = render(run)["spec"]["template"]["spec"]["containers"][0]
    assert main["workingDir"] == "/workspace"
    command = main["command"]
    assert command[command.index("--workdir") + 1] == "src"
    assert command[-3:] == ["--", "python", "train.py"] and "/bin/sh" not in command
    image = render(run, code="image")["spec"]["template"]["spec"]["containers"][0]
    assert image["workingDir"] == "/workspace/src"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"container": {"image": None}}, "needs an image"),
        ({"mounts": ["/data:/data"]}, "cannot reach a Kubernetes pod"),
        ({"container": {"image": "x", "workdir": "/qwex"}}, "must be absolute and not under"),
        ({"container": {"image": "x", "user": "me"}}, "numeric uid"),
        ({"workdir": "/elsewhere"}, "not inside the project"),
    ],
)
def test_jobs_the_backend_cannot_run_are_refused_clearly(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        manifests.check(make_run(**spec).spec, PROJECT, K8sSettings())


def test_settings_reject_a_bad_code_mode() -> None:
    with pytest.raises(ValueError, match="snapshot, image or pvc"):
        K8sSettings(code="nfs")


def test_dollars_reach_the_shell_as_written() -> None:
    """Kubernetes expands `$(VAR)` and reads `$$` as `$` in commands and env values."""
    run = make_run(command=["sh", "-c", "kill -9 $$; echo $(HOME)"], env={"P": "$(X)$"})
    main = render(run)["spec"]["template"]["spec"]["containers"][0]
    assert main["command"][-1] == "kill -9 $$$$; echo $$(HOME)"
    assert {"name": "P", "value": "$$(X)$$"} in main["env"]


def test_the_runs_name_and_labels_are_on_the_job_and_pod() -> None:
    """`kubectl get jobs -l team=nlp` finds a run started with `-l team=nlp`; a label that
    Kubernetes would refuse is kept as an annotation instead of failing the Job."""
    run = make_run(name="train-3", labels={"team": "nlp", "note": "two words"})
    job = render(run)
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        assert meta["labels"]["team"] == "nlp" and meta["labels"]["qwex.dev/name"] == "train-3"
        assert "note" not in meta["labels"]
        assert json.loads(meta["annotations"]["qwex.dev/labels"]) == {"note": "two words"}
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "qwex"


def test_volumes_mount_claims_and_secrets_beside_the_code() -> None:
    pod = render(
        volumes=[
            {"mount": "/data", "pvc": "datasets", "read_only": True},
            {"mount": "/creds", "secret": "api-keys"},
        ]
    )["spec"]["template"]["spec"]
    assert {
        "name": "volume-0",
        "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True},
    } in pod["volumes"]
    assert {"name": "volume-1", "secret": {"secretName": "api-keys"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "volume-0", "mountPath": "/data", "readOnly": True} in mounts
    assert {"name": "volume-1", "mountPath": "/creds", "readOnly": True} in mounts


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"mount": "/data"}, "exactly one of pvc or secret"),
        ({"mount": "/data", "pvc": "a", "secret": "b"}, "exactly one of pvc or secret"),
        ({"mount": "data", "pvc": "a"}, "should match pattern"),
    ],
)
def test_a_bad_volume_is_refused_with_what_to_fix(volume: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        K8sSettings.model_validate({"volumes": [volume]})


def test_a_volume_over_the_code_or_the_agent_is_refused() -> None:
    for where in ("/workspace", "/qwex"):
        settings = K8sSettings.model_validate({"volumes": [{"mount": where, "pvc": "a"}]})
        with pytest.raises(SpecError, match="choose another mount"):
            manifests.check(make_run().spec, PROJECT, settings)
