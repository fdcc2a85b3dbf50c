"""Which Python modules the frozen agent needs, and writing them into the bundle.

The agent is stdlib-only (an import-linter contract in qwex-core), so its
closure is found statically with `modulefinder` from the entry module. Large
packages that the agent can never reach at run time are excluded to keep the
bundle small; a smoke test of the built bundle (see `build.py`) proves the
rest is complete. Modules are written as sourceless, unchecked-hash `.pyc`
files: nothing is stat'ed or recompiled at start, and nothing is written.
"""

from __future__ import annotations

import modulefinder
import py_compile
import shutil
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import qwex_core

EXCLUDED = (
    "tkinter",
    "_tkinter",
    "test",
    "unittest",
    "pydoc",
    "pydoc_data",
    "doctest",
    "asyncio",
    "multiprocessing",
    "concurrent",
    "ctypes",
    "readline",
    "ssl",
    "_ssl",
    "lib2to3",
    "distutils",
    "pdb",
    "idlelib",
    "xml",
    "pyexpat",
    "email",
    "http",
    "urllib.request",
    "_testcapi",
    "_testinternalcapi",
    "curses",
    "sqlite3",
    "dbm",
    "ensurepip",
    "venv",
    "turtle",
    "turtledemo",
    "_frozen_importlib",
    "_frozen_importlib_external",
    # optional accelerators whose libraries (OpenSSL, libbz2, liblzma) would triple the size:
    "_hashlib",
    "bz2",
    "_bz2",
    "lzma",
    "_lzma",
)
ALWAYS = ("encodings", "runpy")
"""Imported by the interpreter itself rather than by the agent's code."""


@dataclass
class ModuleSet:
    """Pure-Python modules (name -> source file) and extension modules (shared objects)."""

    sources: dict[str, Path] = field(default_factory=dict)
    packages: set[str] = field(default_factory=set)
    extensions: list[Path] = field(default_factory=list)
    core_files: dict[str, Path] = field(default_factory=dict)
    """qwex-core files in the bundle, by path relative to the site dir (for the manifest)."""


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def core_site_dir() -> Path:
    """The directory that holds the installed `qwex_core` package (site-packages or src/)."""
    return Path(qwex_core.__file__).resolve().parent.parent


def collect(entry: Path, stdlib: Path | None = None) -> ModuleSet:
    """The static import closure of `entry` within the standard library and qwex-core.

    `stdlib`: another Python's standard library of this X.Y (a cross build's target); its
    pure-Python modules are taken, while extension modules are still found as this Python
    names them (the caller maps them to the target's)."""
    site, host = core_site_dir(), stdlib_dir()
    finder = modulefinder.ModuleFinder(
        path=[str(site), str(stdlib or host), str(host / "lib-dynload")], excludes=list(EXCLUDED)
    )
    finder.run_script(str(entry))
    for name in ALWAYS:
        finder.import_hook(name)
    import encodings  # every codec, since they are looked up by name at run time
    import pkgutil

    for info in pkgutil.iter_modules(encodings.__path__):
        finder.import_hook(f"encodings.{info.name}")
    found = ModuleSet()
    for name, module in finder.modules.items():
        filename: str | None = getattr(module, "__file__", None)
        if name == "__main__" or not filename:
            continue
        path = Path(filename)
        if path.suffix == ".so":
            found.extensions.append(path)
            continue
        found.sources[name] = path
        if getattr(module, "__path__", None):
            found.packages.add(name)
        if path.resolve().is_relative_to(site) and name.split(".")[0] == "qwex_core":
            found.core_files[str(path.resolve().relative_to(site))] = path
    return found


def write(modules: ModuleSet, pylib: Path, entry: Path) -> None:
    """Compile every module into `pylib` (the bundle's lib/pythonX.Y) and copy the extensions."""
    dynload = pylib / "lib-dynload"
    dynload.mkdir(parents=True, exist_ok=True)
    for name, source in sorted(modules.sources.items()):
        parts = name.split(".")
        rel = (
            Path(*parts, "__init__.pyc")
            if name in modules.packages
            else Path(*parts[:-1], parts[-1] + ".pyc")
        )
        _compile(source, pylib / rel, display=str(rel.with_suffix(".py")))
    _compile(entry, pylib / "qwex_agent_entry.pyc", display="qwex_agent_entry.py")
    for ext in sorted(modules.extensions):
        shutil.copy2(ext, dynload / ext.name)


def _compile(source: Path, target: Path, display: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=display,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
