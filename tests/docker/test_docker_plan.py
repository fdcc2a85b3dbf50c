"""The rules of the Docker backend that need no daemon: the container plan, what a
container's state says about its agent, platform names and the agent bundle checks. Real objects, no mocks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docker_support import docker_spec
from qwex_agent.locate import AgentError, check, find_agent
from qwex_agent.platforms import Platform, elf_platform
from qwex_core.errors import SpecError
from qwex_core.lifecycle import STOP_MARGIN, Seen
from qwex_core.models import Mount, ResourceRequirements, Run
from qwex_core.store import RunStore
from qwex_docker import spec as plan
from qwex_docker.runner import container_probe


def make_run(project: Path, **fields: object) -> tuple[Run, plan.HostFacts]:
    store = RunStore(project)
    run = store.create(docker_spec(["python", "train.py"], **fields))  # type: ignore[arg-type]
    facts = plan.HostFacts(
        project, store.run_dir(run.id), Path("/agents/linux-amd64"), None, "1000:100"
    )
    return run, facts


def test_the_command_is_the_mounted_agent_running_the_users_command(project: Path) -> None:
    run, facts = make_run(project, grace_period=7.5)
    create, _ = plan.create_args(run, facts)
    assert create["entrypoint"] == ["/qwex/bin/qwex"]
    assert create["command"] == [
        "run",
        "--local",
        "--run-dir",
        "/qwex-run",
        "--quiet",
        "--grace",
        "7.5",
        "--",
        "python",
        "train.py",
    ]
    assert create["stop_timeout"] >= 7.5 + STOP_MARGIN
    assert create["name"] == f"qwex-{run.id}"


def test_mounts_agent_read_only_run_dir_and_project_at_the_workdir(project: Path) -> None:
    (project / "data").mkdir()
    run, facts = make_run(
        project,
        container={"workdir": "/src", "read_only_project": True},
        mounts=[Mount(source="data", target="/data", read_only=True)],
    )
    _, host = plan.create_args(run, facts)
    mounts = {m["Target"]: (m["Source"], m["ReadOnly"]) for m in host["mounts"]}
    assert mounts == {
        "/qwex": ("/agents/linux-amd64", True),
        "/qwex-run": (str(facts.run_dir), False),
        "/src": (str(project), True),
        "/data": (str((project / "data").resolve()), True),
    }


def test_runs_as_the_invoking_user_unless_told(project: Path) -> None:
    run, facts = make_run(project)
    assert plan.create_args(run, facts)[0]["user"] == "1000:100"
    assert (
        plan.HostFacts.here(project, project, project, None).uid_gid
        == f"{os.getuid()}:{os.getgid()}"
    )
    run, facts = make_run(project, container={"user": "0:0"})
    assert plan.create_args(run, facts)[0]["user"] == "0:0"
    run, facts = make_run(project, container={"user": "image"})
    assert plan.create_args(run, facts)[0]["user"] is None


def test_another_container_user_gets_the_invoking_users_group_and_no_one_else(
    project: Path,
) -> None:
    run, facts = make_run(project)
    assert "group_add" not in plan.create_args(run, facts)[1]
    for user in ("image", "0:0"):
        run, facts = make_run(project, container={"user": user})
        assert plan.create_args(run, facts)[1]["group_add"] == ["100"]


def test_resources_become_nano_cpus_memory_without_swap_and_gpu_requests(project: Path) -> None:
    run, facts = make_run(project, resources=ResourceRequirements(cpu=1.5, memory="512Mi", gpu=2))
    _, host = plan.create_args(run, facts)
    assert host["nano_cpus"] == 1_500_000_000
    assert host["mem_limit"] == host["memswap_limit"] == 512 * 2**20
    assert host["device_requests"] == [{"Count": 2, "Capabilities": [["gpu"]]}]
    run, facts = make_run(project)
    _, host = plan.create_args(run, facts)
    assert not {"nano_cpus", "mem_limit", "device_requests", "network_mode"} & set(host)


def test_labels_mark_the_run_and_win_over_user_labels(project: Path) -> None:
    run, facts = make_run(project, labels={"team": "ml", "qwex.run-id": "forged"})
    labels = plan.create_args(run, facts)[0]["labels"]
    assert labels["team"] == "ml"
    assert labels["qwex.run-id"] == run.id
    assert labels["qwex.run-dir"] == str(facts.run_dir)
    assert labels["qwex.project"] == str(project)


def test_network_from_the_job_else_the_backend_default(project: Path) -> None:
    run, facts = make_run(project, container={"network": "host"})
    assert plan.create_args(run, facts)[1]["network_mode"] == "host"
    run, _ = make_run(project)
    facts = plan.HostFacts(project, project, project, "none", "0:0")
    assert plan.create_args(run, facts)[1]["network_mode"] == "none"


def test_a_host_workdir_inside_the_project_maps_into_the_container(project: Path) -> None:
    (project / "sub" / "dir").mkdir(parents=True)
    spec = docker_spec(["true"], workdir=str(project / "sub" / "dir"))
    assert plan.container_workdir(spec, project) == "/workspace/sub/dir"
    with pytest.raises(SpecError, match="not inside the project"):
        plan.container_workdir(docker_spec(["true"], workdir="/etc"), project)


def test_bad_jobs_are_refused_before_anything_is_created(project: Path) -> None:
    with pytest.raises(SpecError, match="needs an image"):
        plan.check(docker_spec(["true"], image=None), project)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="reserved"):
        plan.check(docker_spec(["true"], mounts=[Mount(source=".", target="/qwex/x")]), project)
    with pytest.raises(SpecError, match="does not exist"):
        plan.check(docker_spec(["true"], mounts=[Mount(source="nope", target="/data")]), project)


def state(status: str, **extra: object) -> dict[str, object]:
    return {"Id": "c0ffee" * 10, "State": {"Status": status, **extra}}


@pytest.mark.parametrize(
    ("info", "known", "seen", "what"),
    [
        (None, False, Seen.NOTHING, "its container"),
        (None, True, Seen.GONE, "its container"),
        (state("created"), True, Seen.STARTING, "its container c0ffeec0ffee"),
        (state("running"), True, Seen.ALIVE, "its container c0ffeec0ffee"),
        (state("paused"), True, Seen.ALIVE, "its container c0ffeec0ffee"),
        (state("removing"), True, Seen.ALIVE, "its container c0ffeec0ffee"),
        (state("exited", ExitCode=1), True, Seen.EXITED, "its container c0ffeec0ffee"),
        (state("dead"), True, Seen.EXITED, "its container c0ffeec0ffee"),
    ],
)
def test_what_a_container_state_says_about_the_agent(
    info: dict[str, object] | None, known: bool, seen: Seen, what: str
) -> None:
    probe = container_probe(info, known=known)
    assert (probe.seen, probe.what) == (seen, what)


def test_an_exited_container_tells_how() -> None:
    probe = container_probe(state("exited", ExitCode=137, OOMKilled=True, Error="x"), known=True)
    assert (probe.exit_code, probe.oom, probe.error) == (137, True, "x")


def test_platform_names_follow_docker() -> None:
    assert Platform.parse("linux/aarch64") == Platform("linux", "arm64")
    assert Platform.parse("linux-amd64").dirname == "linux-amd64"
    assert Platform.of_image(
        {"Os": "linux", "Architecture": "arm64", "Variant": "v8"}
    ) == Platform.parse("linux/arm64")
    assert elf_platform(Path(sys.executable).resolve()) == Platform.host()
    assert elf_platform(Path(__file__)) is None
    with pytest.raises(ValueError, match="not a platform"):
        Platform.parse("amd64")


@pytest.fixture(scope="module")
def built_agent() -> Path:
    from qwex_agent.build import BuildError, build

    try:
        return build()
    except BuildError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


def copy_agent(agent: Path, to: Path) -> Path:
    dest = to / "linux-amd64"
    shutil.copytree(agent, dest, symlinks=True)
    return dest


def test_the_built_agent_needs_nothing_from_the_host(built_agent: Path, tmp_path: Path) -> None:
    """Run through its own loader with an empty environment: no host Python, no PATH to it."""
    loader = next((built_agent / "lib").glob("ld-*.so*"))
    result = subprocess.run(
        [
            str(loader),
            str(built_agent / "bin" / "qwex"),
            "run",
            "--local",
            "--run-dir",
            str(tmp_path / "run"),
            "--",
            "/bin/echo",
            "hi",
        ],
        capture_output=True,
        text=True,
        env={},
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    interp = subprocess.run(
        ["patchelf", "--print-interpreter", str(built_agent / "bin" / "qwex")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert interp == "/qwex/lib/" + loader.name  # where the bundle is mounted in the container


def test_an_agent_for_another_platform_is_refused(built_agent: Path, tmp_path: Path) -> None:
    fake = copy_agent(built_agent, tmp_path)
    launcher = fake / "bin" / "qwex"
    data = bytearray(launcher.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64: an arm64 build in the amd64 slot
    launcher.write_bytes(bytes(data))
    agent, why = check(fake, Platform("linux", "amd64"))
    assert agent is None and "built for linux/arm64, not linux/amd64" in why
    with pytest.raises(AgentError, match="qwex agent build"):
        find_agent(Platform("linux", "amd64"), agent_dir=str(tmp_path))


def test_an_agent_built_from_other_agent_sources_is_refused(
    built_agent: Path, tmp_path: Path
) -> None:
    fake = copy_agent(built_agent, tmp_path)
    manifest = (fake / "manifest.json").read_text()
    (fake / "manifest.json").write_text(
        manifest.replace('"qwex_core/agent/main.py": "', '"qwex_core/agent/main.py": "0')
    )
    agent, why = check(fake, Platform("linux", "amd64"))
    assert agent is None and "other qwex-core sources" in why and "main.py" in why


def test_a_missing_agent_for_a_foreign_platform_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as caught:
        find_agent(Platform("linux", "arm64"), agent_dir=str(tmp_path), image="img:1")
    message = str(caught.value)
    assert "linux/arm64 (the platform of image img:1)" in message
    assert "`qwex agent build --platform linux/arm64`" in message
    assert "`pip install qwex-docker-agents`: linux/amd64 and linux/arm64" in message
    with pytest.raises(AgentError) as caught:
        find_agent(Platform("linux", "riscv64"), agent_dir=str(tmp_path), image="img:2")
    message = str(caught.value)
    assert "linux/riscv64 (the platform of image img:2)" in message
    assert "qwex has no agent for linux/riscv64" in message
    assert "on a linux/riscv64 machine" in message
