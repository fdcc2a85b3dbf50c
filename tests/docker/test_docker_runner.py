"""The Docker runner against the real daemon: what a user notices, run by run.

Resources, mounts, users, networks and labels are checked from inside the
container or on the container itself; failures (OOM, missing image, no GPU,
no agent for the image's platform, a vanished or wedged container) must each
end in a clear final state.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, PYTHON, docker_spec, wait_gone, wait_until
from qwex_core.errors import QwexError
from qwex_core.models import Mount, ResourceRequirements, Run, RunStatus
from qwex_core.service import RunService

pytestmark = pytest.mark.docker

MakeService = Callable[..., RunService]


def finish(service: RunService, command: list[str], timeout: float = 60, **fields: Any) -> Run:
    run = service.submit(docker_spec(command, **fields))
    final = service.wait(run, timeout=timeout)
    assert final.is_final, f"run {run.id} still {final.status.value} after {timeout}s"
    return final


def out(service: RunService, run: Run) -> str:
    return service.store.log_path(run.id, "stdout").read_text()


def containers_of(api: Any, run: Run) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = api.containers(
        all=True, filters={"label": f"qwex.run-id={run.id}"}
    )
    return found


def test_the_seed_example_runs_a_project_script_with_python(
    make_service: MakeService, project: Path, docker_api: Any
) -> None:
    (project / "script.py").write_text(
        "import os, sys\nprint('hello from', os.getcwd())\nopen('made.txt', 'w').write('x')\nsys.exit(4)\n"
    )
    service = make_service()
    run = finish(service, ["python script.py"], image=PYTHON)
    assert (run.status, run.exit_code, run.reason) == (RunStatus.FAILED, 4, "exit code 4")
    assert out(service, run) == "hello from /workspace\n"
    made = (project / "made.txt").stat()
    assert (made.st_uid, made.st_gid) == (os.getuid(), os.getgid())
    assert run.backend_data["container_id"] and run.backend_data["platform"] == "linux/amd64"
    wait_gone(docker_api, run.id)


def test_the_busybox_image_really_has_no_python_libc_or_tmp(make_service: MakeService) -> None:
    service = make_service()
    run = finish(
        service,
        [
            "sh",
            "-c",
            "ls / ; test ! -e /tmp && test ! -e /lib && "
            "! command -v python3 && ! command -v python && echo bare",
        ],
    )
    assert run.status is RunStatus.SUCCEEDED, service.store.log_path(run.id, "stderr").read_text()
    assert out(service, run).endswith("bare\n")


def test_files_are_owned_by_the_chosen_uid_gid(make_service: MakeService, project: Path) -> None:
    project.chmod(0o777)
    service = make_service()
    run = finish(
        service, ["sh", "-c", "id -u; id -g; echo x > by-1234.txt"], container={"user": "1234:2345"}
    )
    assert run.status is RunStatus.SUCCEEDED, service.store.log_path(run.id, "stderr").read_text()
    assert out(service, run) == "1234\n2345\n"
    made = (project / "by-1234.txt").stat()
    assert (made.st_uid, made.st_gid) == (1234, 2345)


def test_workdir_env_and_read_only_mounts(
    make_service: MakeService, project: Path, tmp_path: Path
) -> None:
    (project / "sub").mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from the host\n")
    service = make_service()
    run = finish(
        service,
        [
            "sh",
            "-c",
            'pwd; echo "$GREETING"; cat /data/in.txt; touch /data/x 2>/dev/null || echo ro-data; '
            "touch /workspace/y 2>/dev/null || echo ro-project",
        ],
        workdir=str(project / "sub"),
        env={"GREETING": "hi"},
        mounts=[Mount(source=str(shared), target="/data", read_only=True)],
        container={"read_only_project": True},
    )
    assert out(service, run) == "/workspace/sub\nhi\nfrom the host\nro-data\nro-project\n"
    assert not (project / "y").exists()


def test_cpu_and_memory_limits_reach_the_container(make_service: MakeService) -> None:
    service = make_service()
    script = (
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || "
        "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    )
    run = finish(
        service, ["sh", "-c", script], resources=ResourceRequirements(cpu=0.5, memory="96Mi")
    )
    quota, period, memory = out(service, run).split()
    assert int(quota) / int(period) == 0.5
    assert int(memory) == 96 * 2**20


INTERFACES = ["sh", "-c", "ls /sys/class/net"]
"""The container's network interfaces, one a line."""


def test_the_default_network_has_no_private_address(make_service: MakeService) -> None:
    service = make_service()
    run = finish(service, ["sh", "-c", "ip -o addr | awk '{print $2, $4}'"])
    assert set(out(service, run).split("\n")) <= {"lo 127.0.0.1/8", "lo ::1/128", ""}


def test_network_none_leaves_the_container_only_loopback(
    make_service: MakeService, project: Path, real_network: str, docker_api: Any
) -> None:
    # The backend's default is a network with a real interface, so that `network = "none"`
    # on the job is seen to change what the container has (CI's default network has only lo,
    # so `docker inspect` tells "none" from the daemon's default). Containers are kept to be
    # inspected, then removed.
    (project / "qwex.toml").write_text(
        f'[docker]\nnetwork = "{real_network}"\nkeep_containers = true\n'
    )
    service = make_service()
    default = finish(service, INTERFACES)
    none = finish(service, INTERFACES, container={"network": "none"})
    modes = {}
    for run in (default, none):
        for container in containers_of(docker_api, run):
            modes[run.id] = docker_api.inspect_container(container["Id"])["HostConfig"][
                "NetworkMode"
            ]
            docker_api.remove_container(container["Id"], force=True, v=True)
    assert out(service, default).split() == ["eth0", "lo"]
    assert out(service, none).split() == ["lo"]
    assert modes == {default.id: real_network, none.id: "none"}


def test_oom_killed_command_is_reported_as_such(make_service: MakeService, docker_api: Any) -> None:
    service = make_service()
    run = finish(
        service,
        ["python", "-c", "b = b'x' * (600 * 2**20); print(len(b))"],
        image=PYTHON,
        resources=ResourceRequirements(memory="64Mi"),
    )
    run = service.get(run.id)  # the reason is amended once the runner has seen the container
    assert run.status is RunStatus.FAILED
    assert run.exit_code == 137
    assert (run.reason or "").startswith("OOMKilled"), run.reason
    assert "64Mi" in (run.reason or "")
    wait_gone(docker_api, run.id)


def test_missing_image_fails_clearly_and_is_recorded(make_service: MakeService) -> None:
    service = make_service()
    with pytest.raises(QwexError, match=r"image not found: qwex-test/no-such-image .*--pull"):
        service.submit(docker_spec(["true"], image="qwex-test/no-such-image"))
    (run,) = service.list()
    assert run.status is RunStatus.FAILED and "image not found" in (run.reason or "")


def test_pull_is_attempted_only_when_asked(make_service: MakeService) -> None:
    service = make_service()
    with pytest.raises(QwexError, match="cannot pull image qwex-test/no-such-image"):
        service.submit(
            docker_spec(["true"], image="qwex-test/no-such-image", container={"pull": True})
        )


def test_gpu_request_without_a_gpu_runtime_fails_clearly(
    make_service: MakeService, docker_api: Any
) -> None:
    service = make_service()
    with pytest.raises(QwexError, match=r"did not start: .*(gpu|device driver)"):
        service.submit(docker_spec(["true"], resources=ResourceRequirements(gpu=1)))
    (run,) = service.list()
    assert run.status is RunStatus.FAILED
    wait_gone(docker_api, run.id)


def test_daemon_down_is_a_clear_error_and_a_failed_run(
    project: Path, make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEX_DOCKER_BASE_URL", f"unix://{project}/no-docker.sock")
    service = make_service()
    with pytest.raises(QwexError, match="Docker daemon is not running: no socket at"):
        service.submit(docker_spec(["true"]))
    (run,) = service.list()
    assert run.status is RunStatus.FAILED and "not running" in (run.reason or "")


@pytest.fixture(scope="module")
def s390x_image(docker_api: Any) -> Iterator[str]:
    """The busybox image re-labelled linux/s390x through `docker save`/`docker load`: the agent
    must be chosen by the image's platform, not by this (amd64) host's (s390x: a platform no
    agent exists for, while an arm64 one may be in the user cache, tests/docker/test_arm64.py)."""
    name = "qwex-test/busybox-s390x-label"
    source = b"".join(docker_api.get_image(BUSYBOX))
    packed = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(source)) as old,
        tarfile.open(fileobj=packed, mode="w") as new,
    ):
        manifest = json.load(old.extractfile("manifest.json"))  # type: ignore[arg-type]
        config_name = manifest[0]["Config"]
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == config_name and data is not None:
                config = json.loads(data)
                config["architecture"] = "s390x"
                data = json.dumps(config).encode()
                member.size = len(data)
            elif member.name == "manifest.json" and data is not None:
                manifest[0]["RepoTags"] = [f"{name}:latest"]
                data = json.dumps(manifest).encode()
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
    docker_api.load_image(packed.getvalue())
    assert docker_api.inspect_image(name)["Architecture"] == "s390x"
    yield name
    docker_api.remove_image(name, force=True)


def test_agent_is_chosen_by_the_image_platform(
    make_service: MakeService, s390x_image: str, docker_api: Any
) -> None:
    service = make_service()
    with pytest.raises(
        QwexError,
        match=r"for linux/s390x \(the platform of image qwex-test/busybox-s390x"
        r"-label\).*on a linux/s390x machine",
    ):
        service.submit(docker_spec(["true"], image=s390x_image))
    (run,) = service.list()
    assert run.status is RunStatus.FAILED and "agent bundle missing" in (run.reason or "")
    wait_gone(docker_api, run.id)


def test_a_missing_agent_is_a_clear_error(
    make_service: MakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QWEX_DOCKER_AGENT_DIR", str(tmp_path / "no-agents"))
    service = make_service()
    with pytest.raises(
        QwexError, match=r"agent bundle missing or wrong for linux/amd64.*qwex agent build"
    ):
        service.submit(docker_spec(["true"]))


def test_labels_on_the_container_and_gc_removes_what_is_kept(
    make_service: MakeService,
    project: Path,
    docker_api: Any,
    qwex: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QWEX_DOCKER_KEEP_CONTAINERS", "true")
    service = make_service()
    run = finish(service, ["true"], labels={"team": "ml"})
    (container,) = containers_of(docker_api, run)
    labels = container["Labels"]
    assert labels["qwex.run-id"] == run.id and labels["team"] == "ml"
    assert labels["qwex.project"] == str(project) and labels["qwex.backend"] == "docker"
    listed = qwex("gc", "--dry-run", check=True)
    assert (
        f"would remove container {container['Id'][:12]}  run {run.id}: its run is succeeded"
        in listed.stdout
    )
    assert containers_of(docker_api, run)
    qwex("gc", "--force", check=True)
    wait_gone(docker_api, run.id)


def test_gc_leaves_live_runs_alone(
    make_service: MakeService, docker_api: Any, qwex: Callable[..., Any]
) -> None:
    service = make_service()
    run = service.submit(docker_spec(["sleep", "30"], grace_period=0))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    result = qwex("gc", "--force", "--json", check=True)
    assert run.id not in result.stdout
    assert containers_of(docker_api, run)
    service.cancel(service.get(run.id))
    assert service.wait(run, timeout=30).status is RunStatus.CANCELLED
    wait_gone(docker_api, run.id)


def test_gc_never_removes_a_live_container_whose_run_folder_is_not_here(
    make_service: MakeService, docker_api: Any, qwex: Callable[..., Any], project: Path
) -> None:
    """A daemon shared by a team: a container whose labelled run folder is missing here (a
    teammate's, or a project moved while its run goes on) is not provably ours."""
    service = make_service()
    run = service.submit(docker_spec(["sleep", "30"], grace_period=0))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    moved = project.parent / f"{project.name}-moved"
    project.rename(moved)
    try:
        for where in (moved, project.parent):
            result = qwex("gc", "--force", "--json", cwd=where, check=True)
            assert run.id not in result.stdout
        assert containers_of(docker_api, run)
    finally:
        moved.rename(project)
    service.cancel(service.get(run.id))
    assert service.wait(run, timeout=30).status is RunStatus.CANCELLED
    wait_gone(docker_api, run.id)


def test_gc_with_the_daemon_unreachable_says_so_and_exits_1(
    project: Path, qwex: Callable[..., Any]
) -> None:
    missing = project / "no-daemon.sock"
    result = qwex("gc", env={"QWEX_DOCKER_BASE_URL": f"unix://{missing}"})
    assert result.returncode == 1, result.stderr
    assert "plugin 'docker'" in result.stderr and str(missing) in result.stderr
    assert "nothing to remove in the backends that answered" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_container_removed_behind_qwex_s_back_makes_the_run_lost(
    make_service: MakeService, docker_api: Any
) -> None:
    service = make_service()
    run = service.submit(docker_spec(["sleep", "30"]))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    docker_api.remove_container(run.backend_data["container_id"], force=True)
    final = service.wait(run, timeout=30)
    assert final.status is RunStatus.LOST and "container is gone" in (final.reason or "")


def test_an_agent_killed_from_outside_makes_the_run_lost(
    make_service: MakeService, docker_api: Any
) -> None:
    service = make_service()
    run = service.submit(docker_spec(["sleep", "30"]))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    docker_api.kill(run.backend_data["container_id"], signal="SIGKILL")
    final = service.wait(run, timeout=30)
    assert final.status is RunStatus.LOST
    # The daemon auto-removes the exited container; whether qwex saw it before that decides
    # which of the two reasons it can give. Either way the run is not left "running".
    reason = final.reason or ""
    assert "exited with code 137" in reason or "its container is gone" in reason, reason
    wait_gone(docker_api, run.id)


def test_a_plain_docker_stop_is_a_cancel(make_service: MakeService, docker_api: Any) -> None:
    service = make_service()
    run = service.submit(docker_spec(["sleep", "30"]))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    docker_api.stop(run.backend_data["container_id"], timeout=20)
    final = service.wait(run, timeout=30)
    assert final.status is RunStatus.CANCELLED and "SIGTERM" in (final.reason or "")


def test_cancel_kills_a_wedged_container_after_the_grace_period(
    make_service: MakeService, docker_api: Any
) -> None:
    """A frozen agent cannot act on the cancel: past grace + margin the container is killed."""
    service = make_service()
    run = service.submit(docker_spec(["sleep", "60"], grace_period=0))
    wait_until(lambda: service.get(run.id).status is RunStatus.RUNNING, what="running")
    docker_api.kill(run.backend_data["container_id"], signal="SIGSTOP")  # the agent freezes
    service.cancel(service.get(run.id), reason="stop it")
    final = service.wait(run, timeout=60)
    assert final.status is RunStatus.CANCELLED
    assert (final.reason or "").startswith("stop it") and "killed" in (final.reason or "")
    wait_gone(docker_api, run.id)


def test_many_runs_at_once(make_service: MakeService) -> None:
    service = make_service()
    runs = [service.submit(docker_spec(["sh", "-c", f"echo {i}"])) for i in range(6)]
    finals = [service.wait(r, timeout=60) for r in runs]
    assert [f.status for f in finals] == [RunStatus.SUCCEEDED] * 6
    assert [out(service, f) for f in finals] == [f"{i}\n" for i in range(6)]


def test_agent_in_a_copied_dir_is_used_from_config(
    make_service: MakeService, agent_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "agents"
    shutil.copytree(agent_dir, copy / "linux-amd64", symlinks=True)
    monkeypatch.setenv("QWEX_DOCKER_AGENT_DIR", str(copy))
    service = make_service()
    run = finish(service, ["true"])
    assert run.status is RunStatus.SUCCEEDED


def test_the_agent_ignores_the_images_library_and_python_settings(
    make_service: MakeService, project: Path
) -> None:
    """A broken libc on LD_LIBRARY_PATH and a bogus PYTHONHOME reach the command, not the agent."""
    (project / "badlib").mkdir()
    (project / "badlib" / "libc.so.6").write_bytes(b"not a library")
    service = make_service()
    env = {"LD_LIBRARY_PATH": "/workspace/badlib", "PYTHONHOME": "/nowhere", "PYTHONPATH": "/x"}
    run = finish(service, ["sh", "-c", "echo $LD_LIBRARY_PATH $PYTHONHOME $LC_CTYPE."], env=env)
    assert run.status is RunStatus.SUCCEEDED, service.store.log_path(run.id, "stderr").read_text()
    assert out(service, run) == "/workspace/badlib /nowhere .\n"
