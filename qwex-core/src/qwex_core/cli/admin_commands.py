"""`qwex cancel`, `qwex backends`, `qwex config`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from qwex_core.cli.completion import complete_live_runs, complete_profiles
from qwex_core.cli.output import emit_json, note, run_json, table
from qwex_core.store import short_id

if TYPE_CHECKING:
    from qwex_core.cli.context import State


@click.command()
@click.argument(
    "run_ids", metavar="RUN...", nargs=-1, required=True, shell_complete=complete_live_runs
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until each run has stopped and its final state is recorded.",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds to wait at most (default: grace period + 10).",
)
@click.option("--no-trunc", is_flag=True, help="Print full run ids.")
@click.option("--json", "as_json", is_flag=True, help="Print the resulting run records as JSON.")
@click.pass_obj
def cancel(
    state: State,
    run_ids: tuple[str, ...],
    wait: bool,
    timeout: float | None,
    no_trunc: bool,
    as_json: bool,
) -> None:
    """Cancel runs: SIGTERM to the command's whole process tree, SIGKILL after the grace period."""
    service = state.service()
    full_ids = [service.store.resolve(r) for r in run_ids]  # every id before cancelling any
    ended = [None if as_json else service.final_view(i) for i in full_ids]
    if all(ended):  # runs that will not change: told as their records stand, no model
        for view in ended:
            assert view is not None
            note(f"run {short_id(view.id)} already ended ({view.status})")
        for view in ended:
            assert view is not None
            shown = view.id if no_trunc else short_id(view.id)
            click.echo(f"{shown}  {view.status}  {view.reason or ''}".rstrip())
        return
    runs = [service.observe(i) for i in full_ids]
    for run in runs:
        if run.is_final:
            note(f"run {short_id(run.id)} already ended ({run.status.value})")
        else:
            service.cancel(run)
    results = []
    for run in runs:
        if wait and not run.is_final:
            limit = timeout if timeout is not None else run.spec.grace_period + 10
            run = service.wait(run, timeout=limit)
            if not run.is_final:
                note(
                    f"run {short_id(run.id)} has not stopped after {limit:g}s; "
                    f"it is still {run.status.value}"
                )
        else:
            run = service.store.load(run.id)
        results.append(run)
        if not as_json:
            shown = run.id if no_trunc else short_id(run.id)
            click.echo(f"{shown}  {run.status.value}  {run.reason or ''}".rstrip())
    if as_json:
        emit_json([run_json(r) for r in results])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the backends as JSON.")
@click.pass_obj
def backends(state: State, as_json: bool) -> None:
    """List the installed backends, with the distribution and version that provides each."""
    host = state.host
    rows = [
        {
            "name": info.name,
            "distribution": info.plugin.distribution,
            "version": info.plugin.version,
            "plugin": info.plugin.name,
            "description": info.description,
        }
        for info in host.runners.values()
    ]
    if as_json:
        emit_json({"backends": rows, "load_errors": host.load_errors})
        return
    table(
        [
            [str(r["name"]), r["distribution"] or "-", r["version"] or "-", str(r["description"])]
            for r in rows
        ],
        ["BACKEND", "DISTRIBUTION", "VERSION", "DESCRIPTION"],
    )


@click.command()
@click.option(
    "-p",
    "--profile",
    shell_complete=complete_profiles,
    help="Resolve with this profile applied.",
)
@click.option("--json", "as_json", is_flag=True, help="Print values and their sources as JSON.")
@click.pass_obj
def config(state: State, profile: str | None, as_json: bool) -> None:
    """Show the resolved configuration and where each value came from.

    Sources, lowest precedence first: defaults, the user file
    (~/.config/qwex/config.toml), [tool.qwex] in pyproject.toml, qwex.toml,
    the selected profile, QWEX_* environment variables, command-line flags.
    """
    service = state.service(profile=profile)
    cfg = service.config
    items = cfg.items()
    if as_json:
        emit_json(
            {
                "profile": cfg.profile,
                "files": [str(f) for f in cfg.files],
                "profiles": sorted(cfg.core.profiles),
                "values": [{"key": k, "value": v, "source": s} for k, v, s in items],
            }
        )
        return
    import json

    table([[k, json.dumps(v), s] for k, v, s in items], ["KEY", "VALUE", "SOURCE"])
