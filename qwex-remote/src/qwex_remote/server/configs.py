"""The qwex configuration jobs run with: the server's own, or one of its profiles.

Always loaded from where the server was started, never from an uploaded
snapshot: what a job may do is the administrator's configuration plus what
the policy lets a submission add. Each profile is loaded once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.plugin.manager import PluginHost


class Configs:
    def __init__(self, project_dir: Path, host: PluginHost, base: QwexConfig | None = None) -> None:
        self.project_dir = project_dir
        self.host = host
        self._loaded: dict[str | None, QwexConfig] = {} if base is None else {None: base}
        self._lock = threading.Lock()

    def get(self, profile: str | None = None) -> QwexConfig:
        """The configuration with `profile` applied (None: the server's own); a profile that
        does not exist raises `ConfigError` naming it."""
        with self._lock:
            if profile not in self._loaded:
                from qwex_core.config import load_config

                self._loaded[profile] = load_config(
                    self.project_dir, self.host.config_sections, profile=profile
                )
            return self._loaded[profile]
