"""The qwex plugin of qwex-agent (entry point `agent` in the group `qwex`): `qwex agent ...`.

Imported whenever qwex starts, so it defines only the `agent` group: its commands
(`qwex_agent.commands`) are imported when the group looks one up.
"""

from __future__ import annotations

import click
from qwex_core.plugin import hookimpl


class AgentGroup(click.Group):
    """A group whose commands are added when `qwex_agent.commands` is imported, which it
    does at the first lookup: every qwex command loads this plugin, and no other needs
    that module (`qwex --help` took 39.4 against 40.0 ms, medians of 41 alternated runs)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        _load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _load_commands()
        return super().get_command(ctx, cmd_name)


def _load_commands() -> None:
    import qwex_agent.commands  # noqa: F401  (its decorators add the commands to `agent`)


@click.group(cls=AgentGroup)
def agent() -> None:
    """The self-contained qwex agent: mounted into Docker containers, copied into Kubernetes pods.

    \b
      qwex agent build          build it for this machine's platform or another (into the user cache)
      qwex agent path           where the agent for an image's platform is, or why it is not
      qwex agent image          the agent image (FROM scratch + /qwex) a Kubernetes pod copies it from
    """


@hookimpl
def qwex_register_commands(cli: click.Group) -> None:
    cli.add_command(agent)
