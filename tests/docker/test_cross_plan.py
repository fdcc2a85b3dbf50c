"""The cross build's and the agent image index's pure parts, no compiler or daemon (issue 25):
a foreign root's symlinks stay inside it, image names as containerd stores them, and the
`qwex agent build|image` options refused with one line before anything is built."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from qwex_agent.cross import Root, prepare
from qwex_agent.image import full_name
from qwex_agent.platforms import Platform
from qwex_agent.toolchain import BuildError

Qwex = Callable[..., subprocess.CompletedProcess[str]]
ARM64 = Platform("linux", "arm64")


def test_a_roots_absolute_symlink_resolves_inside_the_root(tmp_path: Path) -> None:
    """Debian's arm64 packages hold absolute links (`/lib/ld-linux-aarch64.so.1` may point at
    `/lib/aarch64-linux-gnu/...`): followed on this machine they would reach its own amd64
    files, so they are followed inside the root."""
    lib = tmp_path / "lib" / "aarch64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "ld-linux-aarch64.so.1").write_bytes(b"arm64 loader")
    (lib / "libz.so.1.2.13").write_bytes(b"arm64 zlib")
    (lib / "libz.so.1").symlink_to("libz.so.1.2.13")
    (tmp_path / "lib" / "ld-linux-aarch64.so.1").symlink_to(
        "/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"
    )
    root = Root(tmp_path, ARM64)
    loader = root.resolve(tmp_path / "lib" / "ld-linux-aarch64.so.1")
    assert loader == lib / "ld-linux-aarch64.so.1" and loader.read_bytes() == b"arm64 loader"
    assert root.find_library("libz.so.1") == lib / "libz.so.1.2.13"
    assert root.find_library("libc.so.6") is None  # this machine's libc is never found


def test_a_symlink_loop_in_a_root_is_a_build_error(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("/a")
    with pytest.raises(BuildError, match="symlink loop"):
        Root(tmp_path, ARM64).resolve(tmp_path / "a")


def test_a_platform_qwex_cannot_cross_build_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as caught:
        prepare(Platform("linux", "s390x"), tmp_path, None)
    assert str(caught.value) == (
        "qwex cannot build the agent for linux/s390x: it cross-builds for linux/amd64, linux/arm64"
    )


def test_a_sysroot_without_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        BuildError, match=r"holds no usr/lib/python3\.\d+: not a root to build from"
    ):
        prepare(ARM64, tmp_path, None)


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("qwex/agent:0.1.0", "docker.io/qwex/agent:0.1.0"),
        ("busybox", "docker.io/library/busybox:latest"),
        ("qwex.local/qwex-agent-arm64:0.1.0", "qwex.local/qwex-agent-arm64:0.1.0"),
        ("localhost:5000/agent", "localhost:5000/agent:latest"),
        ("registry.example.com/ml/qwex-agent:1", "registry.example.com/ml/qwex-agent:1"),
    ],
)
def test_image_names_as_containerd_stores_them(name: str, stored: str) -> None:
    """The name in the archive is the one the kubelet looks up: a short name would be
    imported under a name no pod asks for."""
    assert full_name(name) == stored


def test_agent_build_options_are_checked_first(qwex: Qwex, tmp_path: Path) -> None:
    bad = qwex("agent", "build", "--platform", "s390x", "-o", str(tmp_path / "x"))
    assert bad.returncode == 2 and "not a platform: 's390x'" in bad.stderr
    other = qwex("agent", "build", "--platform", "linux/s390x", "-o", str(tmp_path / "y"))
    assert other.returncode == 1
    assert other.stderr.strip().splitlines() == [
        "Error: qwex cannot build the agent for linux/s390x: it cross-builds for "
        "linux/amd64, linux/arm64"
    ]
    native = qwex("agent", "build", "--sysroot", str(tmp_path))
    assert native.returncode == 2 and "--sysroot goes with --platform" in native.stderr
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_several_platforms_need_an_oci_archive(qwex: Qwex) -> None:
    both = qwex("agent", "image", "--platform", "linux/amd64", "--platform", "linux/arm64")
    assert both.returncode == 2 and "add --oci-archive FILE" in both.stderr
    assert "Traceback" not in both.stderr
