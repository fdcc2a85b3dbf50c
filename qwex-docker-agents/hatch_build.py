"""Refuse to build a qwex-docker-agents wheel that carries no agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class AgentsPresent(BuildHookInterface):
    """The wheel is pure Python (`py3-none-any`): the agents run in Linux containers of their
    own architecture, whatever the host, so every host may install it."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        package = Path(self.root) / "src" / "qwex_docker_agents"
        agents = sorted(p.name for p in package.glob("linux-*") if (p / "bin" / "qwex").is_file())
        if not agents:
            raise RuntimeError(
                f"no agent in {package}: build it first (`nox -s dist` does, or "
                f"`qwex agent build --output {package}/linux-<arch>`)"
            )
        self.app.display_info(f"qwex-docker-agents: {', '.join(agents)}")
