"""`qwex agent image` on the real daemon: FROM scratch plus /qwex, and its `agent copy` verb
doing in `docker run` what a pod's init container does (the pod itself: tests/k8s)."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX
from qwex_core.agent import image_name
from qwex_core.agent.main import command_line, copy_command

pytestmark = pytest.mark.docker

Qwex = Callable[..., Any]
LAUNCHER = ("/qwex/bin/qwex",)


@pytest.fixture
def tag(docker_api: Any, agent_dir: Path) -> Iterator[str]:
    """A tag of our own, removed afterwards."""
    name = f"qwex-test/agent:{uuid.uuid4().hex[:8]}"
    yield name
    docker_api.remove_image(name, force=True)


def layer_names(api: Any, image: str) -> set[str]:
    """Every path in every layer of `image` (from `docker save`)."""
    saved = io.BytesIO(b"".join(api.get_image(image)))
    names: set[str] = set()
    with tarfile.open(fileobj=saved) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for layer in manifest[0]["Layers"]:
            data = outer.extractfile(layer)
            assert data is not None
            with tarfile.open(fileobj=io.BytesIO(data.read())) as tar:
                names |= {m.name.rstrip("/") for m in tar.getmembers()}
    return names


def run(
    api: Any, image: str, command: list[str], binds: dict[str, dict[str, str]]
) -> tuple[int, str]:
    """`docker run --rm` without a network; the exit code and the output."""
    container = api.create_container(
        image,
        command=command,
        host_config=api.create_host_config(binds=binds, network_mode="none"),
        labels={"qwex-test": "agent-image"},
    )
    try:
        api.start(container)
        code = api.wait(container, timeout=60)["StatusCode"]
        return code, api.logs(container).decode()
    finally:
        api.remove_container(container, force=True)


def test_the_image_holds_only_the_agent(
    project: Path, qwex: Qwex, docker_api: Any, agent_dir: Path, tag: str
) -> None:
    result = qwex("agent", "image", "--tag", tag, "--json", check=True)
    info = json.loads(result.stdout)
    assert info["tag"] == tag and info["built"] is True and info["platform"] == "linux/amd64"
    attrs = docker_api.inspect_image(tag)
    assert attrs["Id"] == info["id"] and attrs["Architecture"] == "amd64"
    assert attrs["Config"]["Labels"]["qwex.agent.version"] == image_name().split(":")[1]
    assert attrs["Config"]["Cmd"] == copy_command(LAUNCHER, "/qwex-install")
    names = layer_names(docker_api, tag)
    assert {"qwex", "qwex/bin/qwex", "qwex/manifest.json"} <= names
    assert {n for n in names if n != "qwex" and not n.startswith("qwex/")} == set()
    bundle = {p.relative_to(agent_dir).as_posix() for p in agent_dir.rglob("*")}
    assert {n.removeprefix("qwex/") for n in names if n.startswith("qwex/")} == bundle
    # Building again with the same agent keeps the image (and the cluster skips reloading it).
    again = qwex("agent", "image", "--tag", tag, check=True)
    assert again.stdout.strip() == tag and "already holds this agent" in again.stderr
    assert docker_api.inspect_image(tag)["Id"] == info["id"]
    bad = qwex("agent", "image", "--tag", "Not A Tag")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "cannot build the agent image Not A Tag: " in bad.stderr


def test_copy_verb_gives_a_busybox_container_a_working_agent(
    project: Path, qwex: Qwex, docker_api: Any, images: dict[str, str], tag: str, tmp_path: Path
) -> None:
    """The init container's copy into an empty volume, then the main container's run from it."""
    qwex("agent", "image", "--tag", tag, check=True)
    volume = tmp_path / "emptydir"
    volume.mkdir()
    code, out = run(
        docker_api,
        tag,
        copy_command(LAUNCHER, "/qwex-install"),
        {str(volume): {"bind": "/qwex-install", "mode": "rw"}},
    )
    assert code == 0, out
    assert "copied the agent" in out
    assert sorted(p.name for p in volume.iterdir()) == ["bin", "lib", "manifest.json"]
    assert (volume / "bin" / "qwex").stat().st_mode & 0o755 == 0o755
    command = command_line(
        LAUNCHER,
        run_dir="/tmp/r",
        grace=5,
        command=["sh", "-c", "echo hi; echo err >&2"],
        quiet=False,
        termination_log="/tmp/r.final",
    )
    code, out = run(docker_api, BUSYBOX, command, {str(volume): {"bind": "/qwex", "mode": "ro"}})
    assert code == 0, out
    assert sorted(out.splitlines()) == ["err", "hi"]  # the pod log gets the command's output
    code, out = run(docker_api, tag, ["/qwex/bin/qwex", "agent", "copy"], {})
    assert code == 2 and "usage: qwex agent copy DEST" in out
