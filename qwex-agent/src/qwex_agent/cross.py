"""Building the agent for another architecture than this machine's (`qwex agent build --platform`).

The launcher is cross-compiled with Debian's cross compiler (`gcc-aarch64-linux-gnu`)
against the target's libpython, and the bundle takes the target's extension modules,
pure-Python standard library, glibc and loader from the target's Debian packages. Those
packages are fetched once with `apt-get download` into a folder of the user cache and
unpacked there with `dpkg-deb -x` (the "root": nothing is installed system-wide, no
`dpkg --add-architecture`); apt reads this machine's sources with the architecture
overridden, through a private state folder, so it works without root. `--sysroot DIR`
uses any other root filesystem of the target instead (a debootstrap, an image's export).

`ldd` cannot run a foreign binary, so the libraries are found by walking `DT_NEEDED` with
`readelf` (binutils) through the root's library folders. The smoke test runs the bundle
under `qemu-<arch>-static` (Debian's qemu-user-static).
"""

from __future__ import annotations

import ast
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qwex_agent.platforms import TRIPLETS, Platform
from qwex_agent.toolchain import AGENTS_EXTRA, BuildError, run_tool

QEMU = {"amd64": "x86_64", "arm64": "aarch64"}
"""qemu-user's name of each architecture (`qemu-aarch64-static`)."""
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def packages() -> list[str]:
    """The target's Debian packages the bundle is made of (its Python is this one's X.Y:
    the bundle's `.pyc` files are compiled here)."""
    return [
        "libc6",  # the loader, libc, libm
        f"libpython{PY_VERSION}",
        f"libpython{PY_VERSION}-dev",  # the headers' pyconfig.h and libpythonX.Y-pic.a
        f"libpython{PY_VERSION}-minimal",  # the core of the standard library
        f"libpython{PY_VERSION}-stdlib",  # the rest, and lib-dynload's extension modules
        "zlib1g",
        "libexpat1",  # libpython links them (its MODLIBS)
    ]


@dataclass
class Root:
    """The target's files: a root filesystem holding (at least) `packages()`."""

    path: Path
    platform: Platform
    versions: dict[str, str] = field(default_factory=dict)
    """Debian package versions, when this root was made from .debs here."""

    @property
    def triplet(self) -> str:
        return TRIPLETS[self.platform.arch]

    @property
    def stdlib(self) -> Path:
        return self.path / "usr" / "lib" / f"python{PY_VERSION}"

    @property
    def dynload(self) -> Path:
        return self.stdlib / "lib-dynload"

    @property
    def lib_dirs(self) -> list[Path]:
        """Where the target's dynamic loader looks, in its order."""
        t = self.triplet
        return [self.path / d for d in (f"lib/{t}", f"usr/lib/{t}", "lib", "usr/lib")]

    def config(self) -> dict[str, object]:
        """The target Python's `sysconfig` build variables (its `_sysconfigdata`)."""
        name = f"_sysconfigdata__{self.triplet}.py"
        for candidate in (
            self.stdlib / name,
            self.stdlib / f"_sysconfigdata__linux_{self.triplet}.py",
        ):
            if candidate.is_file():
                tree = ast.parse(candidate.read_text())
                for node in tree.body:
                    if isinstance(node, ast.Assign):
                        value = ast.literal_eval(node.value)
                        if isinstance(value, dict):
                            return value
        raise BuildError(f"no {name} in {self.stdlib}: not a Python {PY_VERSION} root")

    def python_version(self) -> str:
        header = self.path / "usr" / "include" / f"python{PY_VERSION}" / "patchlevel.h"
        match = re.search(r'#define PY_VERSION\s+"([^"]+)"', _read(header))
        return match.group(1) if match else PY_VERSION

    def libc(self) -> str:
        version = self.versions.get("libc6", "")
        return f"glibc-{version.split('-')[0]}" if version else "glibc"

    def resolve(self, path: Path) -> Path:
        """`path` inside the root with its symlinks followed inside the root too (an absolute
        link points into the root, not into this machine)."""
        current = self.path
        parts = list(path.relative_to(self.path).parts) if path.is_absolute() else list(path.parts)
        hops = 0
        while parts:
            part = parts.pop(0)
            candidate = current / part
            if candidate.is_symlink():
                hops += 1
                if hops > 40:
                    raise BuildError(f"symlink loop at {candidate}")
                target = Path(os.readlink(candidate))
                if target.is_absolute():
                    current = self.path
                    parts = list(target.parts[1:]) + parts
                else:
                    parts = list(target.parts) + parts
            elif part == "..":
                current = current.parent if current != self.path else current
            else:
                current = candidate
        return current

    def find_library(self, soname: str) -> Path | None:
        for folder in self.lib_dirs:
            candidate = folder / soname
            if candidate.exists() or candidate.is_symlink():
                real = self.resolve(candidate)
                if real.is_file():
                    return real
        return None


def supported(platform: Platform) -> None:
    """A `BuildError` naming the platforms qwex builds, unless `platform` is one."""
    if platform.os != "linux" or platform.arch not in TRIPLETS:
        raise BuildError(
            f"qwex cannot build the agent for {platform}: it cross-builds for "
            f"{', '.join(f'linux/{a}' for a in TRIPLETS)}"
        )


def root_dir(platform: Platform) -> Path:
    """Where the fetched root of `platform` is kept (one per architecture, any qwex version)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwex" / "sysroot" / platform.dirname


STAMP = "qwex-packages.txt"
"""In a fetched root: the packages and versions unpacked into it, one `name version` a line."""


def prepare(platform: Platform, sysroot: Path | None, log: Callable[[str], None] | None) -> Root:
    """The root to build for `platform` from: `sysroot` as given, else the cached one, fetched
    first when missing or made from another package list."""
    supported(platform)
    if sysroot is not None:
        root = Root(sysroot.resolve(), platform)
        if not root.stdlib.is_dir():
            raise BuildError(
                f"{sysroot} holds no usr/lib/python{PY_VERSION}: not a root to build from"
            )
        return root
    dest = root_dir(platform)
    wanted = packages()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One fetch at a time (two builds for this platform at once: the second uses the first's).
    with open(dest.with_name(f".{dest.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        versions = _read_stamp(dest / STAMP)
        if sorted(versions) == sorted(wanted):
            return Root(dest, platform, versions)
        return fetch(platform, dest, wanted, log)


def _read_stamp(stamp: Path) -> dict[str, str]:
    versions = {}
    for line in _read(stamp).splitlines():
        name, _, version = line.partition(" ")
        versions[name] = version
    return versions


def fetch(
    platform: Platform, dest: Path, names: list[str], log: Callable[[str], None] | None
) -> Root:
    """Download `names` for `platform` with apt-get and unpack them into `dest`."""
    apt, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if not apt or not dpkg_deb:
        raise BuildError(
            f"building the agent for {platform} takes its files from Debian packages, and "
            "there is no apt-get or dpkg-deb here; give a root filesystem of the target with "
            f"--sysroot, or install the prebuilt agents: `{AGENTS_EXTRA}`"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.fetch-", dir=dest.parent))
    try:
        state = work / "apt"
        for sub in ("lists/partial", "cache/archives/partial", "debs"):
            (state / sub).mkdir(parents=True)
        options = [
            f"-oDir::State::Lists={state / 'lists'}",
            f"-oDir::Cache={state / 'cache'}",
            "-oDir::State::status=/dev/null",
            f"-oAPT::Architecture={platform.arch}",
            f"-oAPT::Architectures::={platform.arch}",
            "-oDebug::NoLocking=1",
            "-q",
        ]
        if os.geteuid() == 0:  # the unprivileged _apt cannot write into this private folder
            options.append("-oAPT::Sandbox::User=root")
        if log:
            log(f"fetching the {platform} packages {' '.join(names)} (apt-get download)")
        _apt(platform, [apt, *options, "update"], cwd=work)
        _apt(platform, [apt, *options, "download", *names], cwd=state / "debs")
        root = work / "root"
        root.mkdir()
        versions = {}
        for deb in sorted((state / "debs").glob("*.deb")):
            name = run_tool([dpkg_deb, "-f", str(deb), "Package"]).strip()
            versions[name] = run_tool([dpkg_deb, "-f", str(deb), "Version"]).strip()
            run_tool([dpkg_deb, "-x", str(deb), str(root)])
        (root / STAMP).write_text("".join(f"{n} {v}\n" for n, v in sorted(versions.items())))
        if dest.exists():
            shutil.rmtree(dest)
        root.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Root(dest, platform, versions)


def _apt(platform: Platform, argv: list[str], cwd: Path) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise BuildError(
            f"cannot fetch the {platform} packages the agent is made of (`{' '.join(argv[:1] + argv[-3:])}` "
            f"failed: {result.stderr.strip()[-800:]}); this machine's apt sources must serve "
            f"{platform.arch}, or give a root filesystem of the target with --sysroot"
        )


@dataclass(frozen=True)
class CrossTools:
    cc: str
    strip: str | None
    readelf: str
    qemu: str | None
    """qemu-user for the smoke test; None when the kernel runs the target's binaries itself
    (binfmt_misc)."""


def tools(platform: Platform) -> CrossTools:
    """The cross compiler, strip and readelf for `platform`, or a `BuildError` naming the
    Debian packages that bring them."""
    supported(platform)
    triplet = TRIPLETS[platform.arch]
    cc = shutil.which(f"{triplet}-gcc")
    readelf = shutil.which(f"{triplet}-readelf") or shutil.which("readelf")
    qemu = shutil.which(f"qemu-{QEMU[platform.arch]}-static") or shutil.which(
        f"qemu-{QEMU[platform.arch]}"
    )
    missing = []
    if not cc:
        missing.append(f"gcc-{triplet}")
    if not readelf:
        missing.append("binutils")
    if not qemu and not _binfmt_registered(platform):
        missing.append("qemu-user-static")
    if missing:
        raise BuildError(
            f"cannot build the qwex agent for {platform} here (no {' or '.join(missing)}). "
            f"Install `apt-get install {' '.join(missing)}` (Debian, Ubuntu); or install the "
            f"prebuilt agents instead: `{AGENTS_EXTRA}`"
        )
    assert cc and readelf
    return CrossTools(cc, shutil.which(f"{triplet}-strip"), readelf, qemu)


def _binfmt_registered(platform: Platform) -> bool:
    return Path(f"/proc/sys/fs/binfmt_misc/qemu-{QEMU[platform.arch]}").is_file()


def compile_launcher(tools_: CrossTools, root: Root, source: Path, out: Path) -> None:
    """Link the launcher with the target's libpython: its `-pic.a` first (as the native
    build on Debian does), else its shared library."""
    config = root.config()
    libpl = root.path / str(config.get("LIBPL", "")).lstrip("/")
    include = root.path / "usr" / "include"
    compile_flags = [f"-I{include / f'python{PY_VERSION}'}", f"-idirafter{include}"]
    rpath_link = ":".join(str(d) for d in root.lib_dirs)
    libs = _flags(tools_, root, config, "MODLIBS", "LIBS", "SYSLIBS")
    common = [f"-Wl,-rpath-link,{rpath_link}"]
    pic = libpl / f"libpython{PY_VERSION}-pic.a"
    links = []
    if pic.is_file():
        links.append([str(pic), *libs, "-lpthread", "-lutil", "-Xlinker", "-export-dynamic"])
    shared = root.find_library(f"libpython{PY_VERSION}.so.1.0")
    if shared is not None:
        links.append([str(shared), *_flags(tools_, root, config, "LIBS", "SYSLIBS")])
    errors = []
    for link in links:
        argv = [tools_.cc, "-O2", "-o", str(out), str(source), *compile_flags, *link, *common]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode == 0:
            return
        errors.append(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    if not links:
        errors.append(f"no libpython{PY_VERSION} in {root.path}")
    raise BuildError(f"cannot link the agent for {root.platform}: " + "\n".join(errors))


def _flags(tools_: CrossTools, root: Root, config: dict[str, object], *names: str) -> list[str]:
    """The target's link flags; a `-lNAME` the cross toolchain lacks (the root has the
    runtime library only, `libNAME.so.N`, not the development link) becomes that file."""
    flags: list[str] = []
    for name in names:
        for flag in str(config.get(name) or "").split():
            if flag.startswith("-l") and flag not in flags:
                lib = flag[2:]
                found = run_tool([tools_.cc, f"-print-file-name=lib{lib}.so"]).strip()
                if found == f"lib{lib}.so":  # not found by the cross toolchain
                    runtime = sorted(
                        p for d in root.lib_dirs for p in d.glob(f"lib{lib}.so.[0-9]*")
                    )
                    if not runtime:
                        raise BuildError(
                            f"the target's libpython needs lib{lib}, not in {root.path}"
                        )
                    flag = str(runtime[0])
                flags.append(flag)
            elif flag.startswith("-L") or flag.startswith("-Wl"):
                continue  # the target's build paths, meaningless here
    return flags


def needed(tools_: CrossTools, binary: Path) -> list[str]:
    """The `DT_NEEDED` sonames of an ELF file (readelf works on any architecture)."""
    out = run_tool([tools_.readelf, "-d", "-W", str(binary)])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def interpreter(tools_: CrossTools, binary: Path) -> str:
    out = run_tool([tools_.readelf, "-l", "-W", str(binary)])
    match = re.search(r"\[Requesting program interpreter: ([^\]]+)\]", out)
    if not match:
        raise BuildError(f"{binary.name} has no program interpreter")
    return match.group(1)


def shared_libraries(
    tools_: CrossTools, root: Root, binaries: list[Path]
) -> tuple[dict[str, Path], Path]:
    """Every library the binaries load, by soname, found in the root (`DT_NEEDED` walked
    transitively), and the root's dynamic loader."""
    loader = root.resolve(root.path / interpreter(tools_, binaries[0]).lstrip("/"))
    if not loader.is_file():
        raise BuildError(f"no dynamic loader {loader} in {root.path}")
    libs: dict[str, Path] = {}
    queue = [(b.name, soname) for b in binaries for soname in needed(tools_, b)]
    while queue:
        user, soname = queue.pop(0)
        if soname in libs or soname == loader.name or soname.startswith("ld-linux"):
            continue
        found = root.find_library(soname)
        if found is None:
            raise BuildError(f"{user} needs {soname}, which is not in {root.path}")
        libs[soname] = found
        queue += [(soname, s) for s in needed(tools_, found)]
    return libs, loader


def builtin_modules(tools_: CrossTools, root: Root) -> set[str]:
    """Extension modules built into the target's libpython (`PyInit_<name>` defined)."""
    config = root.config()
    libpl = root.path / str(config.get("LIBPL", "")).lstrip("/")
    library = libpl / f"libpython{PY_VERSION}-pic.a"
    if not library.is_file():
        library = root.find_library(f"libpython{PY_VERSION}.so.1.0") or library
    out = run_tool([tools_.readelf, "-s", "-W", str(library)])
    return set(re.findall(r"\sGLOBAL\s+DEFAULT\s+\d+\s+PyInit_(\w+)$", out, re.M))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
