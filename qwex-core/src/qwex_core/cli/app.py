"""The click application: the command group, error handling, plugin commands."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from qwex_core import __version__
from qwex_core.cli.context import State
from qwex_core.errors import QwexError

if TYPE_CHECKING:
    from qwex_core.plugin.manager import PluginHost


class QwexGroup(click.Group):
    """Turns qwex errors into one-line messages with exit code 1 (2 stays for usage errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except QwexError as exc:
            raise Failure(str(exc)) from None
        except BrokenPipeError:
            # The reader of our output went away (`qwex logs RUN | head -1`): stop quietly, with
            # the code of a process killed by SIGPIPE, as `cat` or `seq` would.
            from qwex_core.cli.output import PIPE_CLOSED, silence_output

            silence_output()
            raise click.exceptions.Exit(PIPE_CLOSED) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            from pydantic import ValidationError

            if isinstance(exc, ValidationError):
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors()[:3]
                )
                raise Failure(f"invalid job: {problems}") from None
            if os.environ.get("QWEX_DEBUG"):
                raise
            raise Failure(
                f"internal error: {type(exc).__name__}: {exc} "
                "(this is a bug in qwex or a plugin; QWEX_DEBUG=1 shows the traceback)"
            ) from None


CORE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run_command", "run", "Run COMMAND and follow its output; exit with its exit code."),
    "list": ("read_commands", "list_runs", "List runs, newest first."),
    "status": (
        "read_commands",
        "status",
        "Show each run's state, exit code, times and reason (several: one block each).",
    ),
    "logs": (
        "read_commands",
        "logs",
        "Print a run's output, kept in the run record even after its container or pod is "
        "gone, in the order the command wrote it (stdout and stderr each to its own output).",
    ),
    "wait": (
        "wait_command",
        "wait",
        "Block until every RUN has ended; print each one's exit code on its own line.",
    ),
    "cancel": (
        "admin_commands",
        "cancel",
        "Cancel runs: SIGTERM to the command's whole process tree, SIGKILL after the grace period.",
    ),
    "rm": ("housekeeping", "rm", "Delete runs that have ended: their record, logs and name."),
    "prune": (
        "housekeeping",
        "prune",
        "Delete runs that have ended (all of them, or those matching every option given), "
        "and print how many and how much space that freed.",
    ),
    "gc": (
        "housekeeping",
        "gc",
        "Remove what backends left behind for runs that are final or unknown.",
    ),
    "backends": (
        "admin_commands",
        "backends",
        "List the installed backends, with the distribution and version that provides each.",
    ),
    "config": (
        "admin_commands",
        "config",
        "Show the resolved configuration and where each value came from.",
    ),
    "completion": (
        "completion",
        "completion",
        "Print the shell code that makes SHELL complete qwex's commands, options, run ids "
        "and names, backends and profiles.",
    ),
}
"""Core's commands: name -> (module of `qwex_core.cli`, attribute, its help's first sentence
as click shortens it). A command's module is imported only when the command is looked up,
so `qwex status` never imports `qwex run`'s and `qwex --help` none: `--help` lists them from
the sentence kept here, which tests/core/test_cli_imports.py checks against each command's
own help."""


def terminal_columns() -> int:
    """The terminal's width in columns, as `shutil.get_terminal_size` gives it: `COLUMNS`,
    else the size of the terminal on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpContext(click.Context):
    """The `qwex` group's context: its help is as wide as click makes it, measured without
    `shutil`, which click imports for it (with `bz2`, `lzma`, `zlib` and `fnmatch`: 3 ms of
    CPU of the 50 `qwex --help` costs, medians of 15 alternated runs)."""

    def make_formatter(self) -> click.HelpFormatter:
        from click import formatting

        width = self.terminal_width
        if width is None and formatting.FORCED_WIDTH is None:  # click's own rule, below
            width = max(min(terminal_columns(), self.max_content_width or 80) - 2, 50)
        return self.formatter_class(width=width, max_width=self.max_content_width)


class LazyCommands(QwexGroup):
    """A group whose core commands (`CORE_COMMANDS`) are imported when first looked up. A
    command added with `add_command` (a plugin's) is found first, as before: it replaces a
    core command of the same name."""

    context_class = HelpContext

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(CORE_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in CORE_COMMANDS:
            import importlib

            module, attribute, _ = CORE_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"qwex_core.cli.{module}"), attribute)
            assert isinstance(command, click.Command)
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, with a core command not imported yet shown from its sentence
        in `CORE_COMMANDS` (the same text click would make of its help)."""
        from gettext import gettext

        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=CORE_COMMANDS[name][2])
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section(gettext("Commands")):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


class Failure(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"qwex: error: {self.format_message()}", err=True)


def make_cli(host: PluginHost) -> click.Group:
    """A new `qwex` command group: the core commands plus those `host`'s plugins add.

    A new group per call, so two hosts in one process (tests, a server) never
    share commands. A plugin whose `qwex_register_commands` raises is named in a
    warning; the other plugins' commands are still added.
    """

    @click.group(cls=LazyCommands, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="qwex")
    @click.option(
        "--project",
        type=click.Path(file_okay=False),
        envvar="QWEX_PROJECT_DIR",
        help="Project directory holding .qwex/runs (default: nearest folder with .qwex, "
        "qwex.toml, pyproject.toml or .git).",
    )
    @click.option(
        "--no-color",
        is_flag=True,
        help="No colours, even on a terminal (as NO_COLOR=1; piped output has none).",
    )
    @click.pass_context
    def cli(ctx: click.Context, project: str | None, no_color: bool) -> None:
        """Run a command anywhere, with one CLI and one run record.

        \b
          qwex run -- python train.py                       on this machine
          qwex run -b docker --image python:3.11 -- ...     in any Docker image
          qwex list | qwex status RUN | qwex logs -f RUN | qwex cancel RUN

        Every run is recorded under .qwex/runs/<id>/ with its logs. RUN is a run's
        name, its id (short or full) or a unique prefix of an id; a name is never
        made only of hex digits, so it cannot be read as another run's id.
        """
        from pathlib import Path  # not for `qwex --help`, which never gets here

        if ctx.obj is None:
            ctx.obj = State(host=host)
        ctx.obj.project = Path(project).resolve() if project else None
        if ctx.get_parameter_source("project") is click.core.ParameterSource.ENVIRONMENT:
            ctx.obj.project_source = "QWEX_PROJECT_DIR"

    host.register_commands(cli)
    return cli


def run_completion() -> int:
    """Answer the shell's completion request in `$_QWEX_COMPLETE` (click's protocol: e.g.
    `_QWEX_COMPLETE=bash_complete COMP_WORDS="qwex status " COMP_CWORD=2 qwex`)."""
    from qwex_core.cli.completion import COMPLETE_VAR
    from qwex_core.plugin.manager import PluginHost

    host = PluginHost()
    group = make_cli(host)
    try:
        # Click answers completion requests only in standalone mode, and exits.
        group.main([], prog_name="qwex", complete_var=COMPLETE_VAR, obj=State(host=host))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 1


def run_cli(args: list[str]) -> int:
    from qwex_core.cli.output import TERMINATED, Terminated
    from qwex_core.plugin.manager import PluginHost

    host = PluginHost()
    group = make_cli(host)
    try:
        # With standalone_mode off, click returns the code of a `click.exceptions.Exit`.
        result = group.main(args, prog_name="qwex", obj=State(host=host), standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("qwex: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return TERMINATED
    return result if isinstance(result, int) else 0
