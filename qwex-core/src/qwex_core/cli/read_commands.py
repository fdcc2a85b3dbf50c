"""`qwex list`, `qwex status`, `qwex logs`: reading runs, from any shell."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from qwex_core.cli.output import ago, command_text, duration, emit_json, run_json, table

if TYPE_CHECKING:
    from qwex_core.cli.context import State

STATUSES = ["pending", "queued", "running", "succeeded", "failed", "cancelled", "lost"]


@click.command("list")
@click.option(
    "-s",
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only runs in this status (repeatable).",
)
@click.option(
    "-b", "--backend", "backends", multiple=True, help="Only runs on this backend (repeatable)."
)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of run records.")
@click.pass_obj
def list_runs(
    state: State,
    statuses: tuple[str, ...],
    backends: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """List runs, newest first.

    \b
      qwex list -s running -s pending
      qwex list -b docker -n 20 --json
    """
    service = state.service()
    records = service.list_records(
        statuses=set(statuses) or None,
        backends=set(backends) or None,
        limit=limit,
    )
    if as_json:
        emit_json(list(records))
        return
    rows = [
        [
            r["id"],
            r["status"],
            r["backend"],
            ago(r.get("created_at")),
            duration(r.get("started_at"), r.get("finished_at")),
            command_text(r["spec"]["command"]),
        ]
        for r in records
    ]
    if not rows:
        click.echo("no runs yet: start one with `qwex run -- COMMAND`", err=True)
        return
    table(rows, ["ID", "STATUS", "BACKEND", "CREATED", "DURATION", "COMMAND"])


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run record as JSON.")
@click.pass_obj
def status(state: State, run_id: str, as_json: bool) -> None:
    """Show a run's state, exit code, times and reason."""
    service = state.service()
    run = service.get(run_id)
    if as_json:
        emit_json(run_json(run))
        return
    import shlex

    fields = [
        ("id", run.id),
        ("status", run.status.value),
        ("reason", run.reason or "-"),
        ("backend", run.backend),
        ("command", shlex.join(run.spec.command)),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("created", f"{run.created_at.isoformat()} ({ago(run.created_at)})"),
        ("started", run.started_at.isoformat() if run.started_at else "-"),
        ("finished", run.finished_at.isoformat() if run.finished_at else "-"),
        ("duration", duration(run.started_at, run.finished_at)),
        ("logs", str(service.store.run_dir(run.id))),
    ]
    if run.spec.container.image and run.backend != "local":
        fields.insert(4, ("image", run.spec.container.image))
    for key, value in run.backend_data.items():
        fields.append((key.replace("_", " "), str(value)))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(f"{key.ljust(width)}  {value}")


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing until the run ends, then one status line on stderr; Ctrl-C stops "
    "following, the run goes on.",
)
@click.option(
    "-n", "--tail", type=click.IntRange(min=0), help="Only the last N lines of each stream."
)
@click.option(
    "--stream",
    type=click.Choice(["all", "stdout", "stderr"]),
    default="all",
    show_default=True,
    help="Which output to show; stdout goes to stdout, stderr to stderr.",
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"stdout": ..., "stderr": ...} as JSON.'
)
@click.pass_obj
def logs(
    state: State, run_id: str, follow: bool, tail: int | None, stream: str, as_json: bool
) -> None:
    """Print a run's output, kept in the run record even after its container or pod is gone.

    \b
      qwex logs RUN --tail 50
      qwex logs -f RUN            re-attach to a running run
    """
    from qwex_core.logs import LogReader

    service = state.service()
    run = service.get(run_id)
    streams = ("stdout", "stderr") if stream == "all" else (stream,)
    if follow and not as_json:
        from qwex_core.cli.output import note
        from qwex_core.cli.run_command import follow_run

        try:
            final = follow_run(service, run, tail=tail, streams=streams, cancel_on_interrupt=False)
        except KeyboardInterrupt:
            note(
                f"stopped following; run {run.id[:13]} goes on (`qwex cancel {run.id[:13]}` stops it)"
            )
            raise click.exceptions.Exit(130) from None
        how = (
            final.status.value
            if final.reason in (None, "", final.status.value)
            else (f"{final.status.value}, {final.reason}")
        )
        note(f"run {run.id[:13]} finished: {how}")
        return
    paths = {s: service.store.log_path(run.id, s) for s in streams}
    with LogReader(paths, tail=tail) as reader:
        if as_json:
            texts = {s: bytearray() for s in streams}
            for chunk in reader:
                texts[chunk.stream] += chunk.data
            emit_json({s: data.decode("utf-8", "replace") for s, data in texts.items()})
            return
        sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        for chunk in reader:
            sinks[chunk.stream].write(chunk.data)
            sinks[chunk.stream].flush()
