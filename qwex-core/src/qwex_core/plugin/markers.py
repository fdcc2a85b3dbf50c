"""The hook markers. A leaf module: plugins import it at no cost."""

import pluggy

PROJECT = "qwex"
ENTRY_POINT_GROUP = "qwex"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
