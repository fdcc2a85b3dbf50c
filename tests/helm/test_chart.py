"""The server's Helm chart (deploy/helm/qwex-server), rendered by the real Helm: it lints,
every manifest is valid Kubernetes 1.34 (kubernetes-validate, strict), its Role grants what
the Kubernetes backend calls and nothing cluster-wide, and no secret reaches a plain value."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from helm_support import CHART, TOKENS, by_kind, run_helm, template, template_run

SCHEMA = "1.34"
"""The Kubernetes version of the test cluster."""

NON_DEFAULT: dict[str, Any] = {
    **TOKENS,
    "replicaCount": 2,
    "database": {"existingSecret": "qwex-db", "key": "dsn"},
    "jobsNamespace": "team-jobs",
    "service": {"type": "NodePort", "port": 80, "nodePort": 30765},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "qwex.team.example",
        "tls": [{"secretName": "qwex-tls", "hosts": ["qwex.team.example"]}],
    },
    "serviceAccount": {"create": True, "name": "qwex-runner", "annotations": {"a": "b"}},
    "rbac": {"create": True, "listSecrets": True},
    "persistence": {"enabled": True, "accessMode": "ReadWriteMany", "storageClass": "nfs"},
    "tokens": {"existingSecret": "qwex-tokens", "roles": {"lead": "admin", "ci-bot": "user"}},
    "server": {
        "backends": ["k8s"],
        "default_backend": "k8s",
        "profiles": ["gpu"],
        "concurrency": 2,
    },
    "k8s": {"queue": "team-queue", "agent_image": "registry.team/qwex-agent:1"},
    "profiles": {"gpu": {"resources": {"gpu": 1}}},
    "nodeSelector": {"pool": "services"},
    "tolerations": [{"key": "services", "operator": "Exists", "effect": "NoSchedule"}],
    "podAnnotations": {"team": "ml"},
}
VALUES = {"defaults": TOKENS, "non-default": NON_DEFAULT}


def test_helm_lint_passes(helm: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "--set", "tokens.existingSecret=t")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", VALUES)
def test_every_rendered_manifest_is_valid_kubernetes(helm: Path, case: str) -> None:
    docs = template(helm, VALUES[case])
    kinds = sorted(d["kind"] for d in docs)
    expected = [
        "ConfigMap",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "StatefulSet",
    ]
    if case == "non-default":
        expected = sorted([*expected, "Ingress"])
    assert kinds == expected
    for doc in docs:
        kubernetes_validate.validate(json.loads(json.dumps(doc)), SCHEMA, strict=True)


def test_defaults_one_replica_on_sqlite_with_the_servers_stop_and_probes(helm: Path) -> None:
    (server_set,) = by_kind(template(helm, TOKENS), "StatefulSet")
    spec = server_set["spec"]
    assert spec["replicas"] == 1 and spec["updateStrategy"]["type"] == "RollingUpdate"
    pod = spec["template"]["spec"]
    # uvicorn's graceful shutdown (10 s) and then the worker's (10 s), and a margin.
    assert pod["terminationGracePeriodSeconds"] >= 20
    (server,) = pod["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/api/v1/health"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert server["securityContext"]["allowPrivilegeEscalation"] is False
    assert "env" not in server  # SQLite: no database URL at all
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "qwex-qwex-server"


def test_the_config_map_is_the_servers_policy_and_k8s_settings(helm: Path) -> None:
    docs = template(helm, NON_DEFAULT)
    (config_map,) = by_kind(docs, "ConfigMap")
    config = tomllib.loads(config_map["data"]["qwex.toml"])
    assert config["server"]["default_backend"] == "k8s"
    assert config["server"]["profiles"] == ["gpu"]
    assert config["k8s"] == {
        "namespace": "team-jobs",
        "queue": "team-queue",
        "agent_image": "registry.team/qwex-agent:1",
    }
    assert config["profiles"]["gpu"]["resources"]["gpu"] == 1
    defaults = tomllib.loads(by_kind(template(helm, TOKENS), "ConfigMap")[0]["data"]["qwex.toml"])
    assert defaults["k8s"] == {"namespace": "qwex"}  # the release's namespace, in-cluster


def test_whole_numbers_stay_integers_in_the_config(helm: Path) -> None:
    """YAML numbers reach Helm as floats: `concurrency = 4.0` would read as a float to
    anything but pydantic's lax mode; a fraction stays one."""
    values = {**NON_DEFAULT, "server": {**NON_DEFAULT["server"], "max_cpu": 1.5}}
    (config_map,) = by_kind(template(helm, values), "ConfigMap")
    config = tomllib.loads(config_map["data"]["qwex.toml"])
    assert type(config["server"]["concurrency"]) is int
    assert type(config["profiles"]["gpu"]["resources"]["gpu"]) is int
    assert config["server"]["max_cpu"] == 1.5


def test_the_config_parses_as_the_server_settings(helm: Path) -> None:
    """What the chart renders is what `qwex serve` accepts (numbers from YAML included)."""
    from qwex_k8s.settings import K8sSettings
    from qwex_remote.server.settings import ServerSettings

    for values in VALUES.values():
        (config_map,) = by_kind(template(helm, values), "ConfigMap")
        config = tomllib.loads(config_map["data"]["qwex.toml"])
        ServerSettings.model_validate(config["server"])
        K8sSettings.model_validate(config["k8s"])


def rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (role,) = by_kind(docs, "Role")
    return list(role["rules"])


@pytest.mark.parametrize("case", VALUES)
def test_the_role_is_namespaced_and_names_every_resource_and_verb(helm: Path, case: str) -> None:
    docs = template(helm, VALUES[case])
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    namespace = VALUES[case].get("jobsNamespace", "qwex")
    (role,) = by_kind(docs, "Role")
    (binding,) = by_kind(docs, "RoleBinding")
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    (subject,) = binding["subjects"]
    (account,) = by_kind(docs, "ServiceAccount")
    assert subject["name"] == account["metadata"]["name"]
    assert subject["namespace"] == account["metadata"]["namespace"] == "qwex"
    for rule in rules(docs):
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule


def test_secrets_are_never_read_unless_gc_is_allowed_to_list_them(helm: Path) -> None:
    def secret_verbs(values: dict[str, Any]) -> set[str]:
        found = [r for r in rules(template(helm, values)) if "secrets" in r["resources"]]
        return {verb for rule in found for verb in rule["verbs"]}

    assert secret_verbs(TOKENS) == {"create", "patch", "delete"}  # no get, list or watch
    assert secret_verbs(NON_DEFAULT) == {"create", "patch", "delete", "list"}


def test_the_role_grants_what_the_kubernetes_backend_calls(helm: Path) -> None:
    granted = {
        (group, resource, verb)
        for rule in rules(template(helm, TOKENS))
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = {
        ("batch", "jobs", "create"),
        ("batch", "jobs", "get"),
        ("batch", "jobs", "list"),
        ("batch", "jobs", "watch"),
        ("batch", "jobs", "delete"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods", "patch"),
        ("", "pods/log", "get"),
        ("", "configmaps", "create"),
        ("", "configmaps", "patch"),
        ("", "secrets", "create"),
        ("kueue.x-k8s.io", "localqueues", "get"),
        ("kueue.x-k8s.io", "workloads", "list"),
        ("kueue.x-k8s.io", "workloads", "watch"),
        ("visibility.kueue.x-k8s.io", "localqueues/pendingworkloads", "get"),
    }
    assert needed <= granted, needed - granted


SECRET_LOOKS = re.compile(r"qwex_[A-Za-z0-9_-]{43}|postgres[a-z+]*://|sqlite:|password", re.I)
"""A token's secret, a database URL, a password."""


@pytest.mark.parametrize("case", VALUES)
def test_no_token_or_database_url_is_in_a_plain_value(helm: Path, case: str) -> None:
    docs = template(helm, VALUES[case])
    assert SECRET_LOOKS.findall(json.dumps(docs)) == []
    (server_set,) = by_kind(docs, "StatefulSet")
    pod = server_set["spec"]["template"]["spec"]
    for container in pod["containers"] + pod["initContainers"]:
        for var in container.get("env", []):
            assert "value" not in var and "secretKeyRef" in var["valueFrom"], var
    tokens = next(v for v in pod["volumes"] if v["name"] == "tokens")
    assert tokens["secret"]["secretName"] == "qwex-tokens"
    if case == "non-default":
        (server,) = pod["containers"]
        (url,) = server["env"]
        assert url["name"] == "QWEX_SERVER_DATABASE_URL"
        assert url["valueFrom"]["secretKeyRef"] == {"name": "qwex-db", "key": "dsn"}


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({}, "tokens.existingSecret is required"),
        ({**TOKENS, "replicaCount": 2}, "needs database.existingSecret"),
    ],
)
def test_values_that_cannot_work_are_refused_in_words(
    helm: Path, values: dict[str, Any], says: str
) -> None:
    result = template_run(helm, values)
    assert result.returncode != 0 and says in result.stderr
