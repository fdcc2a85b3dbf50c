"""The qwex plugin of qwex-remote (entry point `remote` in the group `qwex`).

Imported whenever qwex starts, even for `qwex --help`: it imports neither
FastAPI nor SQLAlchemy. `qwex serve` imports them inside its command body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    import click
    from qwex_core.plugin.hookspecs import RegisterSection


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    from qwex_remote.server.settings import ServerSettings

    register("server", ServerSettings)


@hookimpl
def qwex_register_commands(cli: click.Group) -> None:
    from qwex_remote.server.commands import serve

    cli.add_command(serve)
