"""The qwex plugin of qwex-remote (entry point `remote` in the group `qwex`).

Imported whenever qwex starts, even for `qwex --help`: it imports neither
FastAPI nor SQLAlchemy, and not even the definition of `qwex serve` (its
options and subcommands): a stand-in names the command in `qwex --help` and
hands over to the real one when `qwex serve ...` is used or completed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from qwex_core.plugin import hookimpl

if TYPE_CHECKING:
    from qwex_core.plugin.hookspecs import RegisterRunner, RegisterSection

SERVE_HELP = "Run the qwex server: REST API, job queue, tokens."


class LazyServe(click.Group):
    """`qwex serve`, defined in `qwex_remote.server.commands`, imported on first use."""

    def __init__(self) -> None:
        super().__init__("serve", short_help=SERVE_HELP, help=SERVE_HELP)

    @staticmethod
    def real() -> click.Group:
        from qwex_remote.server.commands import serve

        return serve

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        # click then invokes `ctx.command`, the real group, with this context.
        return self.real().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self.real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self.real().get_command(ctx, cmd_name)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return self.real().get_params(ctx)


@hookimpl
def qwex_register_runners(register: RegisterRunner) -> None:
    register(
        "remote",
        "qwex_remote.runner:RemoteRunner",
        description="a qwex server runs it ([tool.qwex.remote] base_url)",
    )


@hookimpl
def qwex_config_sections(register: RegisterSection) -> None:
    register("server", "qwex_remote.server.settings:ServerSettings")
    register("remote", "qwex_remote.client_settings:RemoteSettings")


@hookimpl
def qwex_register_commands(cli: click.Group) -> None:
    cli.add_command(LazyServe())
