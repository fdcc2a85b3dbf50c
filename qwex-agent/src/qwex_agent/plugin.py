"""The qwex plugin of qwex-agent (entry point `agent` in the group `qwex`): `qwex agent ...`.

Imported whenever qwex starts, so it imports only click's command group, whose bodies
import what they need when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl
def qwex_register_commands(cli: click.Group) -> None:
    from qwex_agent.commands import agent

    cli.add_command(agent)
