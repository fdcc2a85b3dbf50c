"""Refuse to build a qwex-docker-agents wheel that lacks the agent of a platform it promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PLATFORMS = ("linux-amd64", "linux-arm64")
"""Every wheel carries both: the image, not the host, decides which one runs."""


class AgentsPresent(BuildHookInterface):
    """The wheel is pure Python (`py3-none-any`): the agents run in Linux containers of their
    own architecture, whatever the host, so every host may install it."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        package = Path(self.root) / "src" / "qwex_docker_agents"
        agents = sorted(p.name for p in package.glob("linux-*") if (p / "bin" / "qwex").is_file())
        missing = [name for name in PLATFORMS if name not in agents]
        if missing:
            raise RuntimeError(
                f"no {' or '.join(missing)} agent in {package}: build them first (`nox -s dist` "
                f"does, or `qwex agent build --platform linux/<arch> --output "
                f"{package}/linux-<arch>`)"
            )
        self.app.display_info(f"qwex-docker-agents: {', '.join(agents)}")
