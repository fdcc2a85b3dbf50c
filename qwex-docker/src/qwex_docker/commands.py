"""Deprecated: `qwex agent` moved to qwex-agent (`qwex_agent.commands`); this re-exports it.

Importing this module warns once with a `DeprecationWarning` (docs/agent.md).
"""

from __future__ import annotations

import warnings

from qwex_agent.commands import agent, agent_build, agent_image, agent_path

__all__ = ["agent", "agent_build", "agent_image", "agent_path"]

warnings.warn(
    "qwex_docker.commands is deprecated: `qwex agent` moved to qwex_agent.commands",
    DeprecationWarning,
    stacklevel=2,
)
