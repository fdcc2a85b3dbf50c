"""Finding the agent bundle for an image's platform, and refusing a wrong one with a clear message.

A bundle is a directory `<os>-<arch>/` holding `bin/qwex`, `lib/` and
`manifest.json`; it is mounted read-only at `/qwex` in the container. Places
searched, first valid one wins:

1. `[tool.qwex.docker] agent_dir` when set (and then only there),
2. the user cache `$XDG_CACHE_HOME/qwex/agent/<qwex-core version>/`, where
   `qwex agent build` (and `nox -s agent`) put what they build,
3. the optional `qwex_docker_agents` package (a wheel carrying prebuilt Linux
   agents for every architecture; see docs/agent.md).

When none holds one, `provide.py` builds it into the user cache on first use.

A candidate is rejected when its launcher is not an ELF file for the wanted
platform, or when it was built from other qwex-core agent sources than the
ones installed (the agent must write the record this qwex reads).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qwex_core
from qwex_core.errors import BackendError

from qwex_agent.platforms import TRIPLETS, Platform, elf_platform

MOUNT = "/qwex"
"""Where the bundle is mounted in the container; its loader path is fixed at build time."""
LAUNCHER = "bin/qwex"
MANIFEST = "manifest.json"
FORMAT = 2
"""Bundle layout version, bumped when the launcher or the layout changes."""
PACKAGED_MODULE = "qwex_docker_agents"


class AgentError(BackendError):
    """No usable agent bundle for the image's platform."""


@dataclass(frozen=True)
class Agent:
    """A verified agent bundle."""

    path: Path
    platform: Platform
    manifest: dict[str, Any]


def cache_root() -> Path:
    """The user cache of built agents, one folder per qwex-core version."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwex" / "agent" / qwex_core.__version__


def search_dirs(agent_dir: str | None) -> list[Path]:
    """Directories that may hold `<os>-<arch>/` bundles, in search order."""
    if agent_dir:
        return [Path(agent_dir).expanduser()]
    dirs = [cache_root()]
    spec = importlib.util.find_spec(PACKAGED_MODULE)
    if spec is not None and spec.submodule_search_locations:
        dirs.extend(Path(p) for p in spec.submodule_search_locations)
    return dirs


def source_digests(files: list[str]) -> dict[str, str]:
    """sha256 of installed qwex-core files, by path relative to the directory holding qwex_core."""
    site = Path(qwex_core.__file__).resolve().parent.parent
    digests = {}
    for rel in files:
        try:
            digests[rel] = hashlib.sha256((site / rel).read_bytes()).hexdigest()
        except OSError:
            digests[rel] = "missing"
    return digests


def check(path: Path, platform: Platform) -> tuple[Agent | None, str]:
    """Verify the bundle at `path` for `platform`: the agent, or None and why not."""
    launcher = path / LAUNCHER
    if not launcher.is_file():
        return None, f"{path}: no agent here"
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable {MANIFEST} ({exc})"
    built_for = elf_platform(launcher)
    if built_for != platform:
        return None, f"{path}: built for {built_for or 'an unknown platform'}, not {platform}"
    if manifest.get("format") != FORMAT:
        return (
            None,
            f"{path}: bundle format {manifest.get('format')}, this qwex-agent needs {FORMAT}",
        )
    recorded: dict[str, str] = manifest.get("sources", {})
    current = source_digests(sorted(recorded))
    changed = sorted(rel for rel, digest in recorded.items() if current.get(rel) != digest)
    if changed or not recorded:
        what = ", ".join(changed[:3]) or "no source list"
        return None, (
            f"{path}: built from other qwex-core sources ({what} differ; built for "
            f"qwex-core {manifest.get('qwex_core_version')})"
        )
    return Agent(path, platform, manifest), ""


def find_agent(
    platform: Platform, *, agent_dir: str | None = None, image: str | None = None
) -> Agent:
    """The agent bundle to mount for an image of `platform`, or an `AgentError` saying what to do."""
    problems = []
    for base in search_dirs(agent_dir):
        agent, why = check(base / platform.dirname, platform)
        if agent is not None:
            return agent
        problems.append(why)
    raise AgentError(missing_message(platform, problems, image))


def missing_message(platform: Platform, problems: list[str], image: str | None) -> str:
    of_image = f" (the platform of image {image})" if image else ""
    if platform == Platform.host():
        how = (
            "build it with `qwex agent build` (or `nox -s agent`; a docker run builds it on "
            "first use unless agent_dir is set), or install the prebuilt agents: "
            "`pip install qwex-docker-agents`"
        )
    elif platform.os == "linux" and platform.arch in TRIPLETS:
        triplet = TRIPLETS[platform.arch]
        how = (
            f"install the prebuilt agents (`pip install qwex-docker-agents`: linux/amd64 and "
            f"linux/arm64), or cross-build it here with `qwex agent build --platform {platform}` "
            f"(Debian: `apt-get install gcc-{triplet} qemu-user-static`)"
        )
    else:
        buildable = " and ".join(f"linux/{arch}" for arch in TRIPLETS)
        how = (
            f"qwex has no agent for {platform} (the prebuilt agents and `qwex agent build "
            f"--platform` cover {buildable}): use an image for one of those, or build it "
            f"with `qwex agent build` on a {platform} machine and copy the result into "
            f"{cache_root() / platform.dirname}"
        )
    found = "; ".join(problems)
    return f"agent bundle missing or wrong for {platform}{of_image}: {found}. To fix: {how}"
