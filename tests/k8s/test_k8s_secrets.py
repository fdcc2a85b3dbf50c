"""Secret env on Kubernetes: the value goes into a Secret owned by the Job, and the pod reads
it through `valueFrom.secretKeyRef`; the Job's manifest (what any reader of Jobs sees) never
holds it. Offline against the schema, then on the real cluster."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from k8s_support import Cluster, body, configure, serialized, wait_for
from kubernetes import client
from qwex_core.models import ContainerConfig, JobSpec, Run, RunStatus
from qwex_core.service import open_service
from qwex_k8s import manifests
from qwex_k8s.manifests import Facts, job_manifest, secret_manifest
from qwex_k8s.settings import K8sSettings

VALUE = "s3cr3t-" + secrets.token_hex(16)
SCHEMA = "1.34"


def offline_run(run_id: str = "01a21d16-05ae-7f6f-9967-d2ac841a99a3") -> Run:
    spec = JobSpec(
        command=["sh", "-c", "echo $API_KEY"],
        backend="k8s",
        env={"PLAIN": "visible"},
        container=ContainerConfig(image="busybox"),
    )
    spec.secret_env = {"API_KEY": VALUE, "odd.name": "x"}
    return Run(
        id=run_id,
        backend="k8s",
        spec=spec,
        created_at=datetime(2026, 11, 27, 12, tzinfo=UTC),
    )


def valid(manifest: dict[str, Any]) -> dict[str, Any]:
    kubernetes_validate.validate(json.loads(json.dumps(manifest)), SCHEMA, strict=True)
    return manifest


def test_the_job_names_the_secret_and_holds_no_value() -> None:
    run = offline_run()
    facts = Facts("team", Path("/p"), Path("/p/.qwex/runs/x"), "laptop", "qwex-code-abc")
    job = valid(job_manifest(run, K8sSettings(), facts))
    assert VALUE not in json.dumps(job)
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "visible"}
    secret = manifests.secret_name(run.id)
    keys = manifests.secret_keys(run)
    for name in ("API_KEY", "odd.name"):
        ref = {"secretKeyRef": {"name": secret, "key": keys[name]}}
        assert env[name] == {"name": name, "valueFrom": ref}
    body = valid(secret_manifest(run, "team"))
    assert body["kind"] == "Secret" and body["immutable"] is True
    assert body["metadata"]["labels"][manifests.LABEL_RUN_ID] == run.id
    assert VALUE not in json.dumps(body)  # base64, as the API stores Secret data


@pytest.mark.k8s
@pytest.mark.live
def test_the_pod_gets_the_secret_through_a_secret_owned_by_the_job(
    project: Path, cluster: Cluster
) -> None:
    configure(project, cluster)
    service = open_service(project)
    spec = service.job(["sh", "-c", 'printf %s "$API_KEY" | sha256sum | cut -c1-64; sleep 2'])
    spec.secret_env = {"API_KEY": VALUE}
    run = service.submit(spec)
    name = manifests.job_name(run.id)
    cluster.created.append(name)
    job = cluster.batch.read_namespaced_job(name, cluster.namespace)
    job_json = json.dumps(serialized(cluster.api, job))
    assert VALUE not in job_json
    secret_name = manifests.secret_name(run.id)
    assert f'"secretKeyRef": {{"key": "e0", "name": "{secret_name}"}}' in job_json
    secret = cluster.core.read_namespaced_secret(secret_name, cluster.namespace)
    assert secret.metadata is not None and job.metadata is not None
    owners = secret.metadata.owner_references or []
    assert [(o.kind, o.name, o.uid) for o in owners] == [("Job", name, job.metadata.uid)]
    final = service.wait(run, timeout=240)
    assert final.status is RunStatus.SUCCEEDED, final.reason
    digest = hashlib.sha256(VALUE.encode()).hexdigest()
    assert service.store.log_path(run.id, "stdout").read_text() == digest + "\n"

    def gone() -> bool:
        try:
            cluster.core.read_namespaced_secret(secret_name, cluster.namespace)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(f"the Secret {secret_name} to be deleted once the run ended", gone, timeout=60)
    for path in (project / ".qwex").rglob("*"):
        assert not path.is_file() or VALUE.encode() not in path.read_bytes(), path


@pytest.mark.k8s
@pytest.mark.live
def test_gc_deletes_a_secret_left_without_its_job(cluster: Cluster, tmp_path: Path) -> None:
    """A run's Secret whose Job never came (the owner patch failed, the Job was refused) is
    removed when this machine's project made it; a teammate's is left alone."""
    from qwex_core.ids import uuid7
    from qwex_core.ownership import owner_token
    from qwex_k8s.gc import collect

    mine = secret_manifest(offline_run(uuid7()), cluster.namespace)
    mine["metadata"]["annotations"] = {
        "qwex.dev/project": str(tmp_path),
        "qwex.dev/owner": owner_token(tmp_path) or "",
    }
    theirs = secret_manifest(offline_run(run_id=uuid7()), cluster.namespace)
    theirs["metadata"]["annotations"] = {
        "qwex.dev/project": str(tmp_path),
        "qwex.dev/owner": "f" * 32,
    }
    for manifest in (mine, theirs):
        cluster.core.create_namespaced_secret(cluster.namespace, body(manifest))
    names = {mine["metadata"]["name"], theirs["metadata"]["name"]}
    found = [g for g in collect(cluster.api, cluster.namespace) if g.name in names]
    assert [(g.name, g.removed) for g in found] == [(mine["metadata"]["name"], True)]
    with pytest.raises(client.ApiException) as info:
        cluster.core.read_namespaced_secret(mine["metadata"]["name"], cluster.namespace)
    assert info.value.status == 404
    cluster.core.delete_namespaced_secret(theirs["metadata"]["name"], cluster.namespace)
