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
    from qwex_core.cli.run_command import exit_code, view_exit_code

    service = state.service()
    full_ids = [service.store.resolve(r) for r in run_ids]  # every id before waiting for any
    ended = [None if as_json else service.final_view(i) for i in full_ids]
    if all(ended):  # runs that will not change: their codes as their records stand, no model
        codes = [view_exit_code(view) for view in ended if view is not None]
        for code in codes:
            click.echo(str(code))
        raise click.exceptions.Exit(next((code for code in codes if code != 0), 0))
    finals = []
    for final in service.wait_each(full_ids):  # several: one look for all a round
        finals.append(final)
        if not as_json:
            click.echo(str(exit_code(final)))
    if as_json:
        emit_json([run_json(r) for r in finals])
    first = next((code for code in map(exit_code, finals) if code != 0), 0)
    raise click.exceptions.Exit(first)
