"""The object every qwex command receives (`@click.pass_obj`), in a module of its own so
commands and plugins can name its type without importing the click application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from qwex_core.config import Key
    from qwex_core.plugin.manager import PluginHost
    from qwex_core.service import RunService


@dataclass
class State:
    """The CLI context: the plugin host (loaded once per process) and the project
    directory given by `--project` (None: found from the working directory)."""

    host: PluginHost
    project: Path | None = None
    project_source: str = "--project"
    """Where `project` came from (`--project` or `QWEX_PROJECT_DIR`), for error messages."""

    def service(
        self, profile: str | None = None, flags: dict[Key, Any] | None = None
    ) -> RunService:
        """The run service for this project; configuration loads only when first used. A
        project folder named but missing is an error: a typo must not list "no runs" or
        create a store somewhere new."""
        from qwex_core.errors import QwexError
        from qwex_core.service import open_service

        if self.project is not None and not self.project.is_dir():
            what = "is not a folder" if self.project.exists() else "does not exist"
            raise QwexError(
                f"the project folder {self.project} ({self.project_source}) {what}; "
                "give an existing folder, or leave it out to use the nearest project"
            )
        return open_service(self.project, host=self.host, profile=profile, flags=flags)
