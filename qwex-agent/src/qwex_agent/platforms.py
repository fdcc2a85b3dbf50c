"""Platform names of agent bundles, and reading an executable's real platform from its ELF header.

The agent runs inside the container, so it must match the *image's* platform
(docs/architecture.md), which Docker reports with its own names (`amd64`, `arm64`,
`arm` + `v7`...). A bundle's directory is named `<os>-<arch>` in Docker's
spelling; the ELF header of its launcher is checked too, so a bundle copied
to the wrong directory is caught before a container fails with
"exec format error".
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from pathlib import Path

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv8": "arm64",
}

TRIPLETS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}
"""The architectures qwex builds agents for (natively, or cross-built on the other), with
Debian's multiarch triplet of each (also its cross compiler's prefix)."""

_ELF_MACHINES = {62: "amd64", 183: "arm64", 40: "arm", 3: "386", 21: "ppc64le", 22: "s390x"}
"""ELF e_machine values (EM_X86_64, EM_AARCH64, EM_ARM, EM_386, EM_PPC64, EM_S390)."""


@dataclass(frozen=True, order=True)
class Platform:
    """An OS/architecture pair in Docker's spelling, e.g. linux/amd64."""

    os: str
    arch: str

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/amd64`, `linux-arm64` or `linux/aarch64` (aliases folded to Docker's names)."""
        os_name, sep, arch = text.replace("-", "/", 1).partition("/")
        if not sep or not os_name or not arch:
            raise ValueError(f"not a platform: {text!r} (expected OS/ARCH, e.g. linux/amd64)")
        arch = arch.split("/")[0].lower()
        return cls(os_name.lower(), _ARCH_ALIASES.get(arch, arch))

    @classmethod
    def of_image(cls, attrs: dict[str, object]) -> Platform:
        """The platform of an image from `docker image inspect` data."""
        os_name = str(attrs.get("Os") or "linux")
        arch = str(attrs.get("Architecture") or "amd64")
        return cls(os_name.lower(), _ARCH_ALIASES.get(arch.lower(), arch.lower()))

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform: only used for building, never to choose an agent."""
        machine = _platform.machine().lower()
        return cls(_platform.system().lower(), _ARCH_ALIASES.get(machine, machine))

    @property
    def dirname(self) -> str:
        """The bundle directory name, e.g. `linux-amd64`."""
        return f"{self.os}-{self.arch}"

    def __str__(self) -> str:
        return f"{self.os}/{self.arch}"


def elf_platform(path: Path) -> Platform | None:
    """The platform an ELF executable was built for, or None when `path` is not ELF."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    if machine == 3 and header[4] == 2:  # EM_386 never appears in 64-bit files
        return None
    arch = _ELF_MACHINES.get(machine, f"elf-machine-{machine}")
    os_name = "linux" if header[7] in (0, 3) else f"elf-osabi-{header[7]}"
    return Platform(os_name, arch)
