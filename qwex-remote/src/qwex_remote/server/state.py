"""What the routes share while the server runs: `ServerState`, made by `start`.

The app's lifespan calls `start` (the database opened and migrated, the plugins and the
configuration loaded, the worker started) and keeps the state on `app.state.server`;
`deps.State` hands it to the routes, which pass it to the services.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwex_remote.server.changes import LogWatch
from qwex_remote.server.configs import Configs
from qwex_remote.server.metrics import Metrics
from qwex_remote.server.settings import ServerSettings
from qwex_remote.server.store import ServerStore

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.plugin.manager import PluginHost


@dataclass
class ServerState:
    """What the routes share, made by the lifespan."""

    settings: ServerSettings
    store: ServerStore
    host: Any
    configs: Configs
    data_dir: Path
    stopping: threading.Event
    wake: threading.Event
    metrics: Metrics = field(default_factory=Metrics)
    _log_watch: LogWatch | None = field(default=None, repr=False)

    def log_watch(self) -> LogWatch:
        """The server's one log watcher: made on the first follow, in the server's event
        loop (call this from there), so a server nobody follows watches no file."""
        if self._log_watch is None:
            self._log_watch = LogWatch(self.store, self.stopping)
        return self._log_watch


def start(
    settings: ServerSettings,
    config: QwexConfig | None,
    host: PluginHost | None,
    worker_name: str | None,
    stop: threading.Event,
    project_dir: Path | None,
    metrics: Metrics | None = None,
) -> tuple[ServerState, Any]:
    """The state and the started worker (the caller closes it at shutdown)."""
    import socket

    from qwex_core.paths import find_project_dir
    from qwex_core.plugin.manager import PluginHost

    from qwex_remote.server.db import open_database
    from qwex_remote.server.worker import Worker

    plugins = host or PluginHost()
    metrics = metrics or Metrics()
    configs = Configs(project_dir or find_project_dir(), plugins, config)
    configs.get()  # a bad configuration stops the start, naming the file and key
    data_dir = settings.resolved_data_dir()
    (data_dir / "snapshots").mkdir(parents=True, exist_ok=True)
    store = ServerStore(open_database(settings.resolved_database_url()))
    worker = Worker(
        store=store,
        host=plugins,
        configs=configs,
        data_dir=data_dir,
        name=worker_name or socket.gethostname(),
        concurrency=settings.concurrency,
        settings=settings,
        metrics=metrics,
    )
    worker.start()
    state = ServerState(
        settings, store, plugins, configs, data_dir, stop, worker.wake, metrics=metrics
    )
    return state, worker
