"""`qwex wait`: block until runs end, as `docker wait` does for containers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from qwex_core.cli.completion import complete_runs
from qwex_core.cli.output import emit_json, run_json

if TYPE_CHECKING:
    from qwex_core.cli.context import State


@click.command()
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True, shell_complete=complete_runs)
@click.option("--json", "as_json", is_flag=True, help="Print the final run records as JSON.")
@click.pass_obj
def wait(state: State, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Block until every RUN has ended; print each one's exit code on its own line.

    Exits with the first non-zero exit code (a run that ended without one, such as
    a lost run or one cancelled before it started, counts as 1), else 0. Ctrl-C
    stops waiting; the runs go on.

    \b
      qwex wait RUN                    in a script: qwex run -d ... then qwex wait
      qwex wait RUN1 RUN2 && echo all succeeded
    """
    from qwex_core.cli.run_command import exit_code

    service = state.service()
    runs = [service.get(r) for r in run_ids]  # resolve every id before waiting for any
    finals = []
    for run in runs:
        final = service.wait(run)
        finals.append(final)
        if not as_json:
            click.echo(str(exit_code(final)))
    if as_json:
        emit_json([run_json(r) for r in finals])
    first = next((code for code in map(exit_code, finals) if code != 0), 0)
    raise click.exceptions.Exit(first)
