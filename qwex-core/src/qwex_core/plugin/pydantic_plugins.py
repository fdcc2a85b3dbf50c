"""pydantic's question "which plugins are installed?", answered from qwex's own scan.

pydantic looks for its plugins (the `pydantic` entry-point group) when a model first
validates, through `importlib.metadata`: importing it and walking every installed
distribution cost 40 ms of CPU in each `qwex run` (of about 250; measured with
`time.process_time` around `get_plugins()` on the 2-core dev machine). The plugin host has
just read every distribution's `entry_points.txt` for qwex's own group. When none of them
declares a pydantic plugin, pydantic's loader module is given that answer (no plugins) and
`importlib.metadata` is never imported; when one does, nothing is changed and pydantic loads
its plugins itself, as always.

It is given when a service opens (`qwex_core.service.open_service`), before any of qwex's
models first validates: a `qwex list` of live runs validates their records before it loads
the configuration, where the answer was given at first.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterable

from qwex_core.plugin.discovery import entry_points

LOADER = "pydantic.plugin._loader"
GROUP = "pydantic"


def answer_without_metadata() -> None:
    """Stand in for pydantic's plugin loader when no installed distribution has a plugin."""
    if LOADER in sys.modules or entry_points(GROUP):
        return
    stand_in = types.ModuleType(LOADER, __doc__)
    vars(stand_in).update(get_plugins=_no_plugins, __getattr__=_from_the_real_loader)
    sys.modules[LOADER] = stand_in


def _no_plugins() -> Iterable[object]:
    return ()


def _from_the_real_loader(name: str) -> object:
    """Any other name pydantic may ask of its loader (a later pydantic's) comes from the real
    module, which then replaces the stand-in. The import system's own questions (`__path__`:
    is it a package?) get the plain answer."""
    if name.startswith("__"):
        raise AttributeError(name)
    sys.modules.pop(LOADER, None)
    return getattr(importlib.import_module(LOADER), name)
