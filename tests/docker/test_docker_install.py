"""`qwex run -b docker` right after `pip install`, as a user gets it (issue 8).

Two ways the agent arrives with no extra step, each in a fresh venv with
non-editable installs: built on first use by an ordinary user with Debian's
own Python, and prebuilt from the qwex-docker-agents wheel on a PATH where no
C compiler can be found.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker_support import BUSYBOX, BUSYBOX_ARM64
from qwex_agent.platforms import Platform
from users import USER, as_user, give, require_user, user_venv

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HOST = Platform.host()
BUILDING = f"qwex: building the qwex agent for {HOST}, once (about "


def agent_lines(stderr: str) -> list[str]:
    """What qwex said on stderr about the agent (it also says which run it follows)."""
    return [line for line in stderr.splitlines() if "agent" in line]


@pytest.fixture(scope="module")
def user_root() -> Iterator[Path]:
    """A folder qwex-user can pass through (0755), for its venv, cache and project."""
    require_user(USER)
    root = Path(tempfile.mkdtemp(prefix="qwex-install-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.users
def test_debian_python_user_builds_the_agent_on_first_run(
    user_root: Path, images: dict[str, str]
) -> None:
    """qwex-user, a venv of /usr/bin/python3, `pip install` of the two folders, no agent
    anywhere: the first docker run builds it (one line on stderr) and succeeds."""
    bin_dir = user_venv(USER, user_root / "user")
    project, cache = user_root / "project", user_root / "cache"
    project.mkdir()
    cache.mkdir()
    (project / "qwex.toml").write_text("")
    give(project, USER)
    give(cache, USER)
    env = {"XDG_CACHE_HOME": str(cache)}
    argv = [str(bin_dir / "qwex"), "run", "-b", "docker", "--image", BUSYBOX, "--", "id", "-u"]

    first = as_user(USER, argv, cwd=project, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{pwd.getpwnam(USER).pw_uid}\n"
    lines = agent_lines(first.stderr)
    assert len(lines) == 1, first.stderr
    (line,) = lines
    assert line.startswith(BUILDING) and line.endswith(" s)"), first.stderr
    (bundle,) = cache.glob(f"qwex/agent/*/{HOST.dirname}")
    manifest = json.loads((bundle / "manifest.json").read_text())
    debian = subprocess.run(
        ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert manifest["python"] == debian  # linked with Debian's libpython, not pyenv's
    assert bundle.stat().st_uid == pwd.getpwnam(USER).pw_uid

    again = as_user(USER, argv, cwd=project, env=env, timeout=120)
    assert (again.returncode, agent_lines(again.stderr)) == (0, []), again.stderr


@pytest.fixture(scope="module")
def wheels(
    agent_dir: Path, arm64_agent: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Wheels of qwex-core, qwex-agent, qwex-docker and qwex-docker-agents, the last carrying the
    agents this session built for the current sources, linux/amd64 and linux/arm64 (what
    `nox -s dist` does)."""
    work = tmp_path_factory.mktemp("dist")
    agents = work / "qwex-docker-agents"
    shutil.copytree(
        REPO / "qwex-docker-agents",
        agents,
        ignore=shutil.ignore_patterns("linux-*", ".linux-*", "dist"),
    )
    for bundle in (agent_dir, arm64_agent):
        shutil.copytree(bundle, agents / "src" / "qwex_docker_agents" / bundle.name)
    out = work / "wheels"
    sources = [str(REPO / p) for p in ("qwex-core", "qwex-agent", "qwex-docker")] + [str(agents)]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), *sources],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = sorted(out.glob("*.whl"))
    assert [w.name.split("-")[0] for w in found] == [
        "qwex_agent",
        "qwex_core",
        "qwex_docker",
        "qwex_docker_agents",
    ]
    assert found[3].name.endswith("-py3-none-any.whl")
    return found


def test_the_agents_wheel_runs_a_job_with_no_compiler(
    wheels: list[Path], images: dict[str, str], foreign_images: dict[str, str], tmp_path: Path
) -> None:
    """A fresh venv with qwex-core and `qwex-docker[agents]` from the built wheels, a PATH
    holding only that venv's bin (no cc, no gcc), an empty user cache: a job in an amd64 image
    and one in an arm64 image run with the packaged agents, nothing is built."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _, core, docker, _ = wheels
    # The agents wheel comes through the extra, found next to the others (pip reads a
    # whitespace-separated list from PIP_FIND_LINKS, kept for the dependencies).
    links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(core.parent)]))
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-input", "-q", str(core), f"{docker}[agents]"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_FIND_LINKS": links},
    )
    assert install.returncode == 0, install.stderr[-3000:]
    path = str(venv / "bin")
    assert not any(shutil.which(cc, path=path) for cc in ("cc", "gcc", "clang"))
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "qwex.toml").write_text("")
    env = {"PATH": path, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache), "LANG": "C.UTF-8"}
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]

    def qwex(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "qwex"), *args],
            capture_output=True,
            text=True,
            cwd=project,
            env=env,
            timeout=120,
        )

    run = qwex("run", "-b", "docker", "--image", BUSYBOX, "--", "echo", "from the wheel")
    assert (run.returncode, run.stdout, agent_lines(run.stderr)) == (0, "from the wheel\n", [])
    where = qwex("agent", "path", "--image", BUSYBOX)
    assert where.returncode == 0, where.stderr
    packaged = Path(where.stdout.strip())
    assert packaged.parts[-2:] == ("qwex_docker_agents", HOST.dirname)
    assert packaged.is_relative_to(venv)

    arm = qwex(
        "run", "-b", "docker", "--image", BUSYBOX_ARM64, "--", "sh", "-c", "uname -m; exit 4"
    )
    assert (arm.returncode, arm.stdout, agent_lines(arm.stderr)) == (4, "aarch64\n", [])
    where = qwex("agent", "path", "--image", BUSYBOX_ARM64)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == packaged.with_name("linux-arm64")
    assert not (cache / "qwex" / "agent").exists()  # nothing was built into the user cache
