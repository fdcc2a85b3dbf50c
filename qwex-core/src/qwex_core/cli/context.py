"""The object every qwex command receives (`@click.pass_obj`), in a module of its own so
commands and plugins can name its type without importing the click application."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qwex_core.config import Key
    from qwex_core.plugin.manager import PluginHost
    from qwex_core.service import RunService


@dataclass
class State:
    """The CLI context: the plugin host (loaded once per process) and the project
    directory given by `--project` (None: found from the working directory)."""

    host: PluginHost
    project: Path | None = None

    def service(
        self, profile: str | None = None, flags: dict[Key, Any] | None = None
    ) -> RunService:
        """The run service for this project; configuration loads only when first used."""
        from qwex_core.service import open_service

        return open_service(self.project, host=self.host, profile=profile, flags=flags)
