"""linux/arm64 images on this amd64 machine: the cross-built agent, run under qemu (issue 25).

The agent is cross-built (`qwex agent build --platform linux/arm64`) from Debian's arm64
packages; the daemon runs the arm64 test images through qemu-user-static, registered with
binfmt_misc by .ci/setup-arm64.sh. A platform qwex has no agent for (linux/s390x) is refused
before any container exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from docker_support import BUSYBOX_ARM64, NOSHELL_ARM64, S390X
from qwex_agent.locate import LAUNCHER, MOUNT, check
from qwex_agent.platforms import Platform, elf_platform

ARM64 = Platform("linux", "arm64")
Qwex = Callable[..., subprocess.CompletedProcess[str]]


def elf_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and elf_platform(p) is not None)


@pytest.mark.slow
def test_the_cross_built_agent_is_arm64_throughout(arm64_agent: Path) -> None:
    """Every binary of the bundle is arm64 (none of this machine's leaked in), the launcher's
    loader is the bundle's own, and the manifest names the Debian arm64 Python it embeds."""
    agent, why = check(arm64_agent, ARM64)
    assert agent is not None, why
    binaries = elf_files(arm64_agent)
    names = {p.relative_to(arm64_agent).as_posix() for p in binaries}
    assert {LAUNCHER, "lib/ld-linux-aarch64.so.1", "lib/libc.so.6"} <= names
    assert {str(elf_platform(p)) for p in binaries} == {"linux/arm64"}
    assert all(
        p.name.endswith("aarch64-linux-gnu.so") for p in arm64_agent.glob("lib/*/lib-dynload/*")
    )
    headers = subprocess.run(
        ["readelf", "-l", "-d", "-W", str(arm64_agent / LAUNCHER)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"[Requesting program interpreter: {MOUNT}/lib/ld-linux-aarch64.so.1]" in headers
    assert "Library rpath: [$ORIGIN/../lib]" in headers
    assert agent.manifest["arch"] == "arm64" and agent.manifest["python"].startswith("3.11.")
    assert agent.manifest["libc"].startswith("glibc-2.")


@pytest.mark.slow
def test_the_cross_built_agent_runs_a_command_under_qemu(arm64_agent: Path) -> None:
    """Through its own loader, under binfmt's qemu: output and exit code of the command, and
    its run record."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        done = subprocess.run(
            [
                str(arm64_agent / "lib" / "ld-linux-aarch64.so.1"),
                str(arm64_agent / LAUNCHER),
                *("run", "--local", "--run-dir", str(run_dir), "--"),
                *("/bin/sh", "-c", "echo out; echo err >&2; exit 7"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp,
        )
        record = json.loads((run_dir / "run.json").read_text())
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")
    assert (record["status"], record["exit_code"]) == ("failed", 7)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("image", "command", "out"),
    [
        (BUSYBOX_ARM64, ["sh", "-c", "uname -m; echo out; echo err >&2; exit 3"], "aarch64\nout\n"),
        (
            NOSHELL_ARM64,
            ["/busybox", "sh", "-c", "uname -m; echo out; echo err >&2; exit 3"],
            "aarch64\nout\n",
        ),
    ],
    ids=["busybox", "from-scratch"],
)
def test_qwex_run_picks_the_arm64_agent_for_an_arm64_image(
    image: str,
    command: list[str],
    out: str,
    project: Path,
    qwex: Qwex,
    arm64_agent: Path,
    foreign_images: dict[str, str],
    docker_api: Any,
) -> None:
    """`qwex run -b docker --image ARM64_IMAGE`: the container runs arm64 (uname), the agent
    mounted is the arm64 one, output and exit code come back; an image with no shell or
    libc (FROM scratch, one static program) too."""
    result = qwex("run", "-b", "docker", "--image", image, "--", *command, timeout=180)
    assert (result.returncode, result.stdout) == (3, out), result.stderr
    assert "err\n" in result.stderr and "exit code 3" in result.stderr
    (run_dir,) = (project / ".qwex" / "runs").iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert (record["status"], record["exit_code"]) == ("failed", 3)
    assert (run_dir / "stdout.log").read_text() == out


@pytest.mark.docker
def test_agent_path_names_the_arm64_agent(
    project: Path, qwex: Qwex, arm64_agent: Path, foreign_images: dict[str, str]
) -> None:
    where = qwex("agent", "path", "--image", BUSYBOX_ARM64, check=True)
    assert Path(where.stdout.strip()) == arm64_agent
    assert arm64_agent.name == "linux-arm64"
    assert elf_platform(arm64_agent / LAUNCHER) == ARM64


@pytest.mark.docker
def test_an_image_of_a_platform_without_agent_is_refused_before_anything_starts(
    project: Path, qwex: Qwex, foreign_images: dict[str, str], docker_api: Any
) -> None:
    """linux/s390x: no agent, none can be built here; one message naming the platform and
    what to do, no traceback, and no container was ever created."""
    since = int(time.time()) - 1
    result = qwex("run", "-b", "docker", "--image", S390X, "--", "true")
    assert result.returncode != 0 and result.stdout == ""
    error = result.stderr.strip()
    assert "linux/s390x (the platform of image qwex-test/s390x)" in error
    assert "`qwex agent build` on a linux/s390x machine" in error
    assert "linux/amd64 and linux/arm64" in error
    assert "Traceback" not in error and len(error.splitlines()) == 1, error
    until = int(time.time()) + 1
    time.sleep(1.1)  # the daemon's events are stamped in seconds
    created = list(
        docker_api.events(
            since=since, until=until, filters={"event": "create", "image": S390X}, decode=True
        )
    )
    assert created == []  # never created, not only removed
    where = qwex("agent", "path", "--image", S390X)
    assert where.returncode == 1 and "linux/s390x" in where.stderr and where.stdout == ""


@pytest.mark.docker
def test_a_missing_arm64_agent_names_the_cross_build_and_the_wheel(
    project: Path, qwex: Qwex, foreign_images: dict[str, str], tmp_path: Path
) -> None:
    """An empty user cache and no prebuilt agents: the arm64 image is refused, and the
    message says how to get its agent (the wheel, or the cross build and its packages)."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    code = "import importlib.util, sys; sys.exit(importlib.util.find_spec('qwex_docker_agents') is not None)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0  # not installed here
    result = qwex("run", "-b", "docker", "--image", BUSYBOX_ARM64, "--", "true", env=env)
    assert result.returncode != 0
    assert "linux/arm64 (the platform of image qwex-test/busybox-arm64)" in result.stderr
    assert "`pip install qwex-docker-agents`" in result.stderr
    assert "`qwex agent build --platform linux/arm64`" in result.stderr
    assert "`apt-get install gcc-aarch64-linux-gnu qemu-user-static`" in result.stderr


@pytest.mark.slow
def test_the_agent_image_index_holds_both_platforms(
    arm64_agent: Path, tmp_path: Path, qwex: Qwex
) -> None:
    """`qwex agent image --platform linux/amd64 --platform linux/arm64 --oci-archive`: one
    OCI index under the tag, a manifest per platform whose config says that platform and
    whose one layer holds that platform's launcher at /qwex/bin/qwex; the same agents give
    the same archive byte for byte; one platform without the archive goes to the daemon,
    several without it are refused."""
    import hashlib
    import io
    import tarfile

    archive = tmp_path / "agent.oci.tar"
    argv = ["agent", "image", "--platform", "linux/amd64", "--platform", "linux/arm64"]
    made = qwex(*argv, "--tag", "example.org/qwex-agent:1", "--oci-archive", str(archive), "--json")
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    assert answer["name"] == "example.org/qwex-agent:1"
    assert sorted(answer["manifests"]) == ["linux/amd64", "linux/arm64"]
    with tarfile.open(archive) as tar:

        def read(name: str) -> bytes:
            member = tar.extractfile(name)
            assert member is not None
            return member.read()

        def blob(digest: str) -> bytes:
            data = read(f"blobs/sha256/{digest.split(':', 1)[1]}")
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            return data

        (top,) = json.loads(read("index.json"))["manifests"]
        assert top["annotations"]["io.containerd.image.name"] == "example.org/qwex-agent:1"
        assert top["digest"] == answer["index"]
        index = json.loads(blob(top["digest"]))
        assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
        platforms = {}
        for entry in index["manifests"]:
            manifest = json.loads(blob(entry["digest"]))
            config = json.loads(blob(manifest["config"]["digest"]))
            (layer,) = manifest["layers"]
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"]))) as bundle:
                launcher = bundle.extractfile("qwex/bin/qwex")
                assert launcher is not None
                header = launcher.read(20)
            machine = int.from_bytes(header[18:20], "little")
            key = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
            platforms[key] = (config["os"], config["architecture"], machine)
            assert config["config"]["Cmd"] == ["/qwex/bin/qwex", "agent", "copy", "/qwex-install"]
    assert platforms == {
        "linux/amd64": ("linux", "amd64", 62),  # EM_X86_64
        "linux/arm64": ("linux", "arm64", 183),  # EM_AARCH64
    }
    again = tmp_path / "again.oci.tar"
    assert (
        qwex(*argv, "--tag", "example.org/qwex-agent:1", "--oci-archive", str(again)).returncode
        == 0
    )
    assert again.read_bytes() == archive.read_bytes()
    refused = qwex(*argv)
    assert refused.returncode == 2 and "--oci-archive" in refused.stderr
