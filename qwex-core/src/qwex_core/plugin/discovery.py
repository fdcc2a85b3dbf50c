"""Finding `qwex` entry points quickly.

`importlib.metadata.entry_points()` costs ~35 ms at every start (it imports
the email and zip machinery and builds every distribution's metadata), more
than a third of the `qwex --help` budget. This reads only what the group
needs: the `entry_points.txt` of each installed distribution on `sys.path`,
in `sys.path` order, the first distribution of a name winning, as
importlib.metadata does. Name and version come from the `.dist-info` folder
name; the METADATA file is read only when someone asks for the display name.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass
from functools import cached_property


def load_reference(value: str) -> object:
    """What a `module:attr.path` reference names (an entry point's value, a runner or a
    section model registered by name so that it is imported only when used)."""
    module_name, _, attr = value.partition(":")
    found: object = importlib.import_module(module_name.strip())
    for part in filter(None, attr.strip().split(".")):
        found = getattr(found, part)
    return found


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str
    dist_path: str
    """The distribution's `.dist-info` (or `.egg-info`) folder (a string: `pathlib` is not
    imported on the way of `qwex --help`, where it cost 5 ms of CPU of 50)."""

    def load(self) -> object:
        return load_reference(self.value)

    @cached_property
    def dist_name(self) -> str:
        """The distribution's name as published (`qwex-core`), from its METADATA."""
        meta = "METADATA" if self.dist_path.endswith(".dist-info") else "PKG-INFO"
        try:
            with open(os.path.join(self.dist_path, meta), encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("Name:"):
                        return line[5:].strip()
                    if not line.strip():
                        break
        except OSError:
            pass
        return os.path.basename(self.dist_path).split("-")[0]

    @property
    def dist_version(self) -> str | None:
        parts = os.path.splitext(os.path.basename(self.dist_path))[0].split("-")
        return parts[1] if len(parts) > 1 else None


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """Every entry point of `group` from the distributions importable on `path` (default sys.path)."""
    return [
        EntryPoint(name, value, dist_path)
        for dist_path, text in _entry_point_files(tuple(sys.path if path is None else path))
        for name, value in _section(text, group)
    ]


@functools.cache
def _entry_point_files(path: tuple[str, ...]) -> list[tuple[str, str]]:
    """(distribution folder, its entry_points.txt) of each distribution on `path`, read once
    per process: the plugin host asks for two groups (qwex's and pydantic's)."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for entry in path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            key = name.split("-")[0].lower().replace(".", "_")
            if key in seen:
                continue
            seen.add(key)
            dist_path = os.path.join(entry or ".", name)
            try:
                with open(os.path.join(dist_path, "entry_points.txt"), encoding="utf-8") as fh:
                    found.append((dist_path, fh.read()))
            except OSError:
                continue
    return found


def _section(text: str, group: str) -> list[tuple[str, str]]:
    """The `name = value` pairs of one `[group]` section of an entry_points.txt."""
    pairs: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line[1:-1].strip() == group
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            pairs.append((name.strip(), value.strip()))
    return pairs
