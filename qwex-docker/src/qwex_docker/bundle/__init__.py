"""Deprecated: the agent bundle moved to the qwex-agent distribution (`qwex_agent`).

`qwex_docker.bundle.<module>` is `qwex_agent.<module>` itself (same classes, same
functions), so code written against it keeps working; importing it warns once with a
`DeprecationWarning`. Import `qwex_agent.build`, `qwex_agent.locate`, ... instead
(docs/agent.md). To be removed in a later release.
"""

from __future__ import annotations

import importlib
import sys
import warnings

MOVED = ("build", "image", "locate", "modules", "platforms", "provide", "toolchain")
"""The modules that were here, each now `qwex_agent.<name>`."""

warnings.warn(
    "qwex_docker.bundle is deprecated: the agent moved to the qwex-agent distribution; "
    "import qwex_agent.<module> (build, image, locate, platforms, provide, ...) instead",
    DeprecationWarning,
    stacklevel=2,
)


def alias(name: str) -> None:
    """Make `qwex_docker.bundle.<name>` the very module `qwex_agent.<name>`."""
    module = importlib.import_module(f"qwex_agent.{name}")
    sys.modules[f"{__name__}.{name}"] = module
    setattr(sys.modules[__name__], name, module)


for _name in MOVED:  # not `entry`, the frozen agent's main module: nobody imports it
    alias(_name)
