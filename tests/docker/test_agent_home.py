"""The agent's one home, qwex-agent: Kubernetes reaches it without qwex-docker, and the old
`qwex_docker.bundle` imports keep working with a DeprecationWarning (docs/agent.md)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import qwex_core

REPO = Path(__file__).resolve().parents[2]
CLEAN = {
    k: v for k, v in os.environ.items() if not k.startswith(("QWEX_", "PYTHON", "VIRTUAL_ENV"))
}


@pytest.fixture(scope="module")
def k8s_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with qwex-core, qwex-agent and qwex-k8s as users install them, and no
    qwex-docker; its bin folder."""
    base = tmp_path_factory.mktemp("k8s-only")
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    done = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            *(str(REPO / name) for name in ("qwex-core", "qwex-agent", "qwex-k8s")),
        ],
        env=CLEAN,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


@pytest.fixture
def tag(docker_api: Any) -> Iterator[str]:
    from docker.errors import ImageNotFound

    name = f"qwex-test/agent:{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(ImageNotFound):  # not built when the test failed before
        docker_api.remove_image(name, force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_kubernetes_gets_its_agent_image_without_qwex_docker(
    k8s_only: Path, agent_dir: Path, docker_api: Any, tag: str, tmp_path: Path
) -> None:
    """`qwex agent image` in a venv holding no Docker backend: the image a pod's init container
    copies the agent from, under the name qwex-k8s puts in its manifests by default."""
    project, cache = tmp_path / "project", tmp_path / "cache"
    project.mkdir()
    (project / "qwex.toml").write_text("")
    # The agent this session built, where a user's `qwex agent build` puts it.
    shutil.copytree(agent_dir, cache / "qwex" / "agent" / qwex_core.__version__ / agent_dir.name)
    env = {**CLEAN, "XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    python, qwex = str(k8s_only / "python"), str(k8s_only / "qwex")
    absent = run(python, "-c", "import qwex_docker")
    assert "No module named 'qwex_docker'" in absent.stderr
    backends = run(qwex, "backends")
    assert backends.returncode == 0, backends.stderr
    assert "k8s" in backends.stdout and "docker" not in backends.stdout

    where = run(qwex, "agent", "path")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(cache)
    built = run(qwex, "agent", "image", "--tag", tag, "--json")
    assert built.returncode == 0, built.stderr
    info = json.loads(built.stdout)
    assert (info["tag"], info["platform"]) == (tag, "linux/amd64")
    labels = docker_api.inspect_image(tag)["Config"]["Labels"]
    assert labels["qwex.agent.version"] == qwex_core.__version__

    # Without --tag it builds the image qwex-k8s names in every pod it creates.
    names = run(
        python,
        "-c",
        "from qwex_core.agent import image_name; from qwex_k8s.manifests import agent_image; "
        "from qwex_k8s.settings import K8sSettings; print(agent_image(K8sSettings()), image_name())",
    )
    in_pods, default_tag = names.stdout.split()
    assert in_pods == default_tag == f"qwex/agent:{qwex_core.__version__}"


def test_old_bundle_imports_warn_and_give_the_same_objects() -> None:
    """Code written against `qwex_docker.bundle` and `qwex_docker.commands` keeps working."""
    snippet = (
        "import warnings; warnings.simplefilter('always')\n"
        "from qwex_docker.bundle.locate import find_agent, AgentError\n"
        "from qwex_docker.bundle import build, platforms\n"
        "import qwex_docker.bundle.image as image\n"
        "from qwex_docker.commands import agent\n"
        "import qwex_agent.locate, qwex_agent.build, qwex_agent.platforms, qwex_agent.image\n"
        "import qwex_agent.commands\n"
        "assert find_agent is qwex_agent.locate.find_agent\n"
        "assert AgentError is qwex_agent.locate.AgentError\n"
        "assert build is qwex_agent.build and platforms is qwex_agent.platforms\n"
        "assert image is qwex_agent.image and agent is qwex_agent.commands.agent\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "DeprecationWarning" in line]
    assert len(warned) == 2, done.stderr
    assert "import qwex_agent.<module>" in warned[0]
    assert "qwex_agent.commands" in warned[1]
    strict = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", "import qwex_docker.bundle"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert strict.returncode == 1 and "qwex_docker.bundle is deprecated" in strict.stderr
