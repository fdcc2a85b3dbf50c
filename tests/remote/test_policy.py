"""The server policy on its own: what `[tool.qwex.server]` lets a remote submission ask for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qwex_remote.server.policy import Refused, allowed_source, check
from qwex_remote.server.schemas import JobSubmission
from qwex_remote.server.settings import ServerSettings

INSTALLED = {"local", "docker"}


def sub(**spec: Any) -> JobSubmission:
    return JobSubmission.model_validate({"submission_id": "s", "command": ["id"], **spec})


def refused(submission: JobSubmission, settings: ServerSettings) -> str:
    with pytest.raises(Refused) as caught:
        check(submission, settings, INSTALLED)
    return caught.value.rule


def test_the_default_policy_is_docker_only_with_no_mounts_and_the_default_network() -> None:
    default = ServerSettings()
    assert check(sub(image="python:3.11"), default, INSTALLED) == "docker"
    assert refused(sub(backend="local"), default) == "server.backends"
    assert refused(sub(mounts=[{"source": "/", "target": "/host"}]), default) == "server.mounts"
    assert refused(sub(network="host"), default) == "server.networks"


def test_what_an_administrator_allows() -> None:
    policy = ServerSettings(
        backends=["docker", "local"],
        default_backend="local",
        images=["python:*"],
        mounts=["/srv/data"],
        networks=["none"],
        max_cpu=2,
        max_memory="1Gi",
        max_gpu=0,
    )
    assert check(sub(), policy, INSTALLED) == "local"
    ok = sub(
        backend="docker",
        image="python:3.12",
        network="none",
        mounts=[{"source": "/srv/data/set1", "target": "/data", "read_only": True}],
        resources={"cpu": 2, "memory": "512Mi"},
    )
    assert check(ok, policy, INSTALLED) == "docker"
    assert refused(sub(image="node:20"), policy) == "server.images"
    escape = [{"source": "/srv/data/../../etc", "target": "/x"}]
    assert refused(sub(mounts=escape), policy) == "server.mounts"
    assert refused(sub(mounts=[{"source": "/srv/database", "target": "/x"}]), policy) == (
        "server.mounts"
    )
    assert refused(sub(resources={"cpu": 4}), policy) == "server.max_cpu"
    assert refused(sub(resources={"memory": "2Gi"}), policy) == "server.max_memory"
    assert refused(sub(resources={"gpu": 1}), policy) == "server.max_gpu"


def test_an_allowed_backend_that_is_not_installed_is_refused_by_name() -> None:
    policy = ServerSettings(backends=["k8s"], default_backend="k8s")
    with pytest.raises(Refused, match="backend 'k8s' is not installed on the server"):
        check(sub(), policy, INSTALLED)


def test_a_profile_must_be_allowed_and_brings_its_backend() -> None:
    policy = ServerSettings(backends=["docker", "local"], profiles=["cpu"])
    backends = {"cpu": "local"}
    assert check(sub(profile="cpu"), policy, INSTALLED, backends.__getitem__) == "local"
    assert check(sub(profile="cpu", backend="docker"), policy, INSTALLED, backends.__getitem__) == (
        "docker"
    )
    with pytest.raises(Refused) as caught:
        check(sub(profile="gpu"), policy, INSTALLED, backends.__getitem__)
    assert caught.value.rule == "server.profiles"


def test_a_mount_source_is_judged_where_it_leads(tmp_path: Path) -> None:
    (tmp_path / "real" / "data").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(tmp_path / "real")  # the allowed root may be a link too
    (tmp_path / "real" / "escape").symlink_to("/")
    policy = ServerSettings(mounts=[str(tmp_path / "shared")])

    def mount(source: Path) -> JobSubmission:
        return sub(mounts=[{"source": str(source), "target": "/x"}])

    assert check(mount(tmp_path / "shared" / "data"), policy, INSTALLED) == "docker"
    assert check(mount(tmp_path / "real" / "data"), policy, INSTALLED) == "docker"
    with pytest.raises(Refused, match="which leads to '/'"):
        check(mount(tmp_path / "shared" / "escape"), policy, INSTALLED)
    assert allowed_source(str(tmp_path / "shared" / "data"), policy.mounts) == str(
        tmp_path / "real" / "data"
    )
