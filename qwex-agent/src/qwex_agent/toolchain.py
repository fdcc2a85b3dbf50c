"""What building the agent needs from this machine, and how to link the launcher here.

The launcher embeds *this* Python, so it links this Python's libpython. How
depends on where the Python comes from: pyenv ships a position-independent
`libpythonX.Y.a`; Debian's `python3-dev` ships a non-PIC `libpythonX.Y.a`
(unusable in the default PIE link) next to `libpythonX.Y-pic.a` and a shared
libpython. The candidates are tried in that order of preference (static first:
one library fewer to load at every start), and what is missing is named with
the Debian package that provides it, so the user has one thing to install.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

PIE_ERROR = "can not be used when making a PIE object"
AGENTS_EXTRA = "pip install qwex-docker-agents"
"""The prebuilt alternative: the agents wheel, which needs no compiler."""


class BuildError(Exception):
    """The bundle cannot be built here; the message says what is missing."""


def run_tool(argv: list[str]) -> str:
    """A build tool's output; its failure as a `BuildError` naming the command."""
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(
            f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout


@dataclass(frozen=True)
class Toolchain:
    cc: str
    patchelf: str
    strip: str | None
    include: Path
    links: list[list[str]]
    """Linker arguments (after the source and -I) to try in order, the first that links wins."""


def python_dev_package() -> str:
    """The Debian package with this Python's headers and libpython."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    default = Path("/usr/bin/python3").resolve().name == f"python{version}"
    return "python3-dev" if default else f"python{version}-dev"


def which(name: str) -> str | None:
    """`name` on PATH, else next to this Python (a pip-installed tool in an unactivated venv)."""
    found = shutil.which(name)
    if found:
        return found
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = shutil.which(name, path=folder)
        if candidate:
            return candidate
    return None


def find() -> Toolchain:
    """The compiler, patchelf and this Python's build files, or a `BuildError` naming what to
    install (Debian packages, or the prebuilt agents) to get them."""
    cc = os.environ.get("CC") or which("cc") or which("gcc")
    patchelf = which("patchelf")
    packages: list[str] = []
    missing: list[str] = []
    if not cc:
        missing.append("no C compiler")
        packages += ["gcc", "libc6-dev"]
    if not patchelf:
        missing.append("no patchelf")
        packages.append("patchelf")
    if not shutil.which("ldd"):
        missing.append("no ldd")
        packages.append("libc-bin")
    include = Path(sysconfig.get_config_var("INCLUDEPY") or "")
    links = link_candidates()
    if not (include / "Python.h").is_file() or not links:
        missing.append(f"no Python.h or libpython for {sys.executable}")
        packages.append(python_dev_package())
    if missing:
        raise BuildError(missing_message(missing, packages))
    assert cc and patchelf
    return Toolchain(cc, patchelf, which("strip"), include, links)


def missing_message(missing: list[str], packages: list[str]) -> str:
    system = sys.base_prefix in ("/usr", "/usr/local")
    how = f"`apt-get install {' '.join(dict.fromkeys(packages))}` (Debian, Ubuntu)"
    if not system and any(p.startswith("python") for p in packages):
        how += ", or use a Python that ships its headers and libpython (a pyenv build does)"
    return (
        f"cannot build the qwex agent here ({', '.join(missing)}). Install {how}; "
        f"or install the prebuilt agents instead: `{AGENTS_EXTRA}`"
    )


def _config_flags(*names: str) -> list[str]:
    flags: list[str] = []
    for name in names:
        flags += shlex.split(str(sysconfig.get_config_var(name) or ""))
    return flags


def link_candidates() -> list[list[str]]:
    """How to link libpython here, most preferred first: a PIC static library (PIE), a non-PIC
    one (with -no-pie), the shared library. Empty when this Python has none of them."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libpl = Path(str(sysconfig.get_config_var("LIBPL")))
    static = libpl / str(sysconfig.get_config_var("LIBRARY"))
    static_libs = [
        *_config_flags("MODLIBS", "LIBS", "SYSLIBS"),
        "-lpthread",
        "-lutil",
        "-Xlinker",
        "-export-dynamic",
    ]
    links: list[list[str]] = []
    pic = static.with_name(f"libpython{version}-pic.a")
    if pic.is_file():
        links.append([str(pic), *static_libs])
    if static.is_file():
        links.append([str(static), *static_libs])
        links.append(["-no-pie", str(static), *static_libs])
    libdir = Path(str(sysconfig.get_config_var("LIBDIR")))
    shared = libdir / str(sysconfig.get_config_var("LDLIBRARY"))
    if shared.suffix != ".a" and shared.exists():
        name = re.sub(r"^lib|\.so.*$", "", shared.name)
        links.append([f"-L{libdir}", f"-l{name}", *_config_flags("LIBS", "SYSLIBS")])
    return links
