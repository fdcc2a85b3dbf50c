"""Fixtures for the Docker backend tests: the real daemon, the real agent, the offline images.

Nothing here is mocked. Without a daemon, the test images or a buildable
agent, the tests skip on a developer machine and FAIL under CI (env `CI`
set), where `.ci/run` provides all three.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX, BUSYBOX_ARM64, NOSHELL_ARM64, PYTHON, S390X, unavailable
from qwex_agent.platforms import Platform
from qwex_core.service import RunService
from qwex_core.testing import service_for


@pytest.fixture(scope="session")
def docker_api() -> Any:
    """A client of the real daemon (through qwex's own connection code)."""
    from qwex_docker.client import DaemonUnavailable, connect

    try:
        api = connect(None, 30)
        api.ping()
    except DaemonUnavailable as exc:
        unavailable(f"no Docker daemon: {exc}")
    return api


@pytest.fixture(scope="session")
def agent_dir(docker_api: Any) -> Path:
    """The agent bundle for this machine, built now if missing or stale (a no-op when fresh)."""
    from qwex_agent.build import BuildError, build

    try:
        return build()
    except BuildError as exc:
        unavailable(f"cannot build the qwex agent: {exc}")
        raise


ARM64 = Platform("linux", "arm64")


@pytest.fixture(scope="session")
def arm64_agent() -> Path:
    """The linux/arm64 agent, cross-built into the user cache where a run finds it (a no-op
    when fresh; its Debian packages are fetched once). Needs .ci/setup-arm64.sh."""
    from qwex_agent.build import BuildError, build

    if Platform.host() == ARM64:
        unavailable("this machine is arm64: the arm64 tests are for a cross-built agent")
    try:
        return build(platform=ARM64)
    except BuildError as exc:
        unavailable(f"cannot cross-build the arm64 agent: {exc}")
        raise


@pytest.fixture(scope="session")
def foreign_images(docker_api: Any) -> dict[str, str]:
    """The linux/arm64 and linux/s390x test images (`nox -s images`), and qemu registered for
    arm64 so the daemon can run the arm64 ones."""
    from docker.errors import ImageNotFound

    for image in (BUSYBOX_ARM64, NOSHELL_ARM64, S390X):
        try:
            docker_api.inspect_image(image)
        except ImageNotFound:
            unavailable(f"test image {image} is missing")
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file():
        unavailable("qemu-aarch64 is not registered with binfmt_misc")
    return {"busybox-arm64": BUSYBOX_ARM64, "noshell-arm64": NOSHELL_ARM64, "s390x": S390X}


@pytest.fixture(scope="session")
def images(docker_api: Any) -> dict[str, str]:
    """The two offline test images, which `nox -s images` builds."""
    from docker.errors import ImageNotFound

    for image in (BUSYBOX, PYTHON):
        try:
            docker_api.inspect_image(image)
        except ImageNotFound:
            unavailable(f"test image {image} is missing")
    return {"busybox": BUSYBOX, "python": PYTHON}


@pytest.fixture(scope="session", autouse=True)
def no_container_left_behind(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """After the whole session, no container of a test project may remain (they are removed
    so the next run starts clean, and the session errors)."""
    yield
    if not any(item.get_closest_marker("docker") for item in request.session.items):
        return
    from qwex_docker.client import DaemonUnavailable, connect
    from qwex_docker.spec import LABEL_PROJECT, LABEL_RUN_ID

    try:
        api = connect(None, 30)
        api.ping()
    except DaemonUnavailable as exc:  # nothing can be checked: never a silent pass under CI
        unavailable(f"cannot check for containers left behind: no Docker daemon: {exc}")
        return
    tmp_root = str(tmp_path_factory.getbasetemp())

    def ours() -> list[dict[str, Any]]:
        return [
            c
            for c in api.containers(all=True, filters={"label": LABEL_RUN_ID})
            if (c.get("Labels") or {}).get(LABEL_PROJECT, "").startswith(tmp_root)
        ]

    deadline = time.monotonic() + 10  # the daemon may still be auto-removing the last ones
    while (left := ours()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for container in left:
        with contextlib.suppress(Exception):
            api.remove_container(container["Id"], force=True, v=True)
    assert not left, f"containers left behind by the tests: {[c['Names'] for c in left]}"


@pytest.fixture(scope="session")
def real_network(docker_api: Any) -> Iterator[str]:
    """A Docker network whose containers get a real interface (`eth0`) besides `lo`.

    CI's daemon runs with `--bridge=none`, so a container on the default network has only `lo`,
    just as with `network = "none"`: a test of that setting compares against this one."""
    import os

    from docker.errors import APIError

    name = f"qwex-test-net-{os.getpid()}"
    try:
        docker_api.create_network(name, driver="bridge")
    except APIError as exc:
        unavailable(f"cannot create the bridge network {name}: {exc}")
    try:
        yield name
    finally:
        with contextlib.suppress(APIError):
            docker_api.remove_network(name)


@pytest.fixture
def docker_ready(docker_api: Any, agent_dir: Path, images: dict[str, str]) -> dict[str, str]:
    return images


@pytest.fixture
def make_service(project: Path, docker_ready: dict[str, str]) -> Callable[..., RunService]:
    """`make_service(image="busybox", **flags)`: a service on the test project, docker backend."""

    def make(image: str = "busybox", **flags: Any) -> RunService:
        return service_for(project, backend="docker", image=docker_ready.get(image, image), **flags)

    return make
