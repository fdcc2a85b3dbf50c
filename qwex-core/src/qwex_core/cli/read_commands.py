"""`qwex list`, `qwex status`, `qwex logs`: reading runs, from any shell."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from qwex_core.agent.record import STATUSES
from qwex_core.cli.completion import complete_backends, complete_runs
from qwex_core.cli.output import (
    ago,
    ago_text,
    clipped,
    column_widths,
    duration,
    duration_text,
    emit_json,
    run_json,
    table,
)
from qwex_core.cli.terminal import no_color_option
from qwex_core.row_cache import TIMES, CachedRow, shell_text, since_epoch
from qwex_core.run_view import RunView
from qwex_core.store import short_id

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from qwex_core.cli.context import State
    from qwex_core.errors import BackendError
    from qwex_core.models import Run
    from qwex_core.service import RunService

FILTER_KEYS = ("name", "label", "status", "backend")


def _filters(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """`--filter KEY=VALUE` options as (key, value) pairs; an unknown key is a usage error."""
    out = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTER_KEYS or not value:
            raise click.BadParameter(
                f"{item!r}: give KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)} "
                "(name=NAME, label=K or label=K=V, status=S, backend=B)",
                param_hint="--filter",
            )
        out.append((key, value))
    return out


def _warn_once() -> Callable[[Run, BackendError], None]:
    """For `qwex list`: one stderr line per distinct problem a backend had bringing a run up
    to date (the run is listed as its record stands)."""
    seen: set[str] = set()

    def warn(run: Run, exc: BackendError) -> None:
        message = str(exc)
        if message not in seen:
            seen.add(message)
            click.echo(
                f"qwex: warning: {message} (run {short_id(run.id)} shown as last seen)", err=True
            )

    return warn


def _matches(record: dict[str, Any], filters: list[tuple[str, str]]) -> bool:
    """Every filter holds: names match by substring (as `docker ps --filter name=`), labels
    by key or key=value; several filters of one key match any of their values."""
    by_key: dict[str, list[str]] = {}
    for key, value in filters:
        by_key.setdefault(key, []).append(value)
    spec = record.get("spec") or {}
    for key, values in by_key.items():
        if key == "name":
            name = spec.get("name") or ""
            ok = any(v in name for v in values)
        elif key == "label":
            labels = spec.get("labels") or {}
            ok = all(
                k in labels and (not sep or labels[k] == v)
                for k, sep, v in (x.partition("=") for x in values)
            )
        else:
            ok = record.get(key) in values
        if not ok:
            return False
    return True


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
    "-b",
    "--backend",
    "backends",
    multiple=True,
    shell_complete=complete_backends,
    help="Only runs on this backend (repeatable).",
)
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only runs that match: name=NAME (part of the name), label=K or label=K=V, "
    "status=S, backend=B (repeatable; all must hold).",
)
@click.option("-n", "--limit", type=click.IntRange(min=1), help="At most this many runs.")
@click.option("--no-trunc", is_flag=True, help="Show full run ids and commands.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Only the ids, one a line (`qwex rm $(qwex list -q)`)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of run records.")
@no_color_option
@click.pass_obj
def list_runs(
    state: State,
    statuses: tuple[str, ...],
    backends: tuple[str, ...],
    filters: tuple[str, ...],
    limit: int | None,
    no_trunc: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """List runs, newest first. ID is the short id (`--no-trunc`: the full id). Any command
    taking RUN accepts a run's NAME, its id (short or full) or a unique prefix of an id; a
    name is never made only of hex digits, so it cannot be read as another run's id.

    \b
      qwex list -s running -s pending
      qwex list -b docker -n 20 --json
      qwex list --filter name=train --filter label=team=nlp
    """
    pairs = _filters(filters)
    wanted = set(statuses) | {v for k, v in pairs if k == "status"}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        raise click.BadParameter(
            f"unknown status {', '.join(map(repr, unknown))}; valid: {', '.join(STATUSES)}",
            param_hint="--filter status",
        )
    # A backend filter is a word in the records: it needs no plugin (runs made on a backend
    # uninstalled since are listed all the same).
    chosen = set(backends) | {v for k, v in pairs if k == "backend"}
    pairs = [(k, v) for k, v in pairs if k not in ("status", "backend")]
    records = state.service().list_records(
        statuses=wanted or None,
        backends=chosen or None,
        limit=limit,
        where=(lambda record: _matches(record, pairs)) if pairs else None,
        unreadable=not (wanted or chosen or pairs),
        on_problem=_warn_once(),
        rows=not as_json,
    )
    if as_json:
        emit_json(list(records))
        return
    if quiet:
        for r in records:
            click.echo(r["id"] if no_trunc else short_id(r["id"]))
        return
    now_us = since_epoch(datetime.now(UTC))
    rows = [_cells(r, now_us, no_trunc) for r in records]
    if not rows:
        if wanted or chosen or pairs:
            missing = sorted(chosen - set(state.host.runners))
            hint = (
                f" (backend {', '.join(map(repr, missing))} is not installed: "
                "`qwex backends` lists those that are)"
                if missing
                else ""
            )
            click.echo(f"no runs match{hint}", err=True)
        else:
            click.echo("no runs yet: start one with `qwex run -- COMMAND`", err=True)
        return
    from qwex_core.cli.terminal import colour_wanted, paint_status

    if not no_trunc:
        _fit_last_column(rows, HEADERS)
    colour = colour_wanted(sys.stdout)
    table(rows, HEADERS, paint={1: lambda text: paint_status(text, text, True)} if colour else None)


LONGEST = 10_000
"""The longest command shown before `_fit_last_column` cuts it to the terminal."""


def _cells(r: dict[str, Any], now_us: int, no_trunc: bool) -> list[str]:
    """`qwex list`'s cells of a record, or of a cached row (`row_cache`), which keeps the
    command already quoted and the times in microseconds: the same text either way, since a
    difference of microseconds over 1e6 is what `timedelta.total_seconds()` gives."""
    if type(r) is CachedRow:
        text = r["command_text"]
        created, started, finished = r["created_us"], r["started_us"], r["finished_us"]
    else:
        unreadable = r["status"] == "unreadable"
        text = (r.get("reason") or "-") if unreadable else shell_text(r["spec"]["command"])
        created, started, finished = (_since_epoch(r.get(key)) for key in TIMES)
    return [
        r["id"] if no_trunc else r.get("short_id") or short_id(r["id"]),
        r["status"],
        r.get("backend") or "-",
        "-" if created is None else ago_text((now_us - created) / 1e6),
        "-"
        if started is None
        else duration_text(((now_us if finished is None else finished) - started) / 1e6),
        (r.get("spec") or {}).get("name") or "-",
        text if r["status"] == "unreadable" else clipped(text, LONGEST),
    ]


def _since_epoch(value: datetime | str | None) -> int | None:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return None if when is None else since_epoch(when)


HEADERS = ["ID", "STATUS", "BACKEND", "CREATED", "DURATION", "NAME", "COMMAND"]
MIN_COMMAND = 10
"""The fewest characters of COMMAND shown, however narrow the terminal."""


def _fit_last_column(rows: list[list[str]], headers: list[str]) -> None:
    """Cut the command (or an unreadable record's reason), the last column, so that every
    line fits the terminal's width (80 when it is not a terminal; `COLUMNS` overrides); a
    name too long to leave the command `MIN_COMMAND` characters is cut too."""
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns
    widths = column_widths(rows, headers)
    room = width - sum(w + 2 for w in widths[:-2])  # for NAME, two spaces, COMMAND
    name_width = min(widths[-2], max(room - 2 - MIN_COMMAND, len(headers[-2])))
    command_width = max(room - name_width - 2, MIN_COMMAND)
    for i, limit in ((-2, name_width), (-1, command_width)):
        if widths[i] > limit:  # one pass a column that needs cutting (10,000 rows: 2 ms each)
            for row in rows:
                if len(row[i]) > limit:
                    row[i] = row[i][: limit - 1] + "…"


@click.command()
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True, shell_complete=complete_runs)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the run record as JSON (several: a list)."
)
@no_color_option
@click.pass_obj
def status(state: State, run_ids: tuple[str, ...], as_json: bool) -> None:
    """Show each run's state, exit code, times and reason (several: one block each).

    Several live runs of one backend are brought up to date together, at the cost of
    one listing (a Kubernetes namespace's Jobs, a server's live jobs)."""
    service = state.service()
    full_ids = [service.store.resolve(r) for r in run_ids]  # every id before reading any
    if as_json:
        if len(full_ids) == 1:
            emit_json(_with_workers(service, run_json(service.observe(full_ids[0]))))
        else:
            runs = service.observe_many(full_ids)
            emit_json([_with_workers(service, run_json(run)) for run in runs])
        return
    views = {i: service.final_view(i) for i in full_ids}
    live = [i for i, view in views.items() if view is None]
    views.update((run.id, RunView.of(run)) for run in service.observe_many(live))
    colour = None
    for number, full_id in enumerate(full_ids):
        if number:
            click.echo("")
        view = views[full_id]
        assert view is not None
        colour = _status_block(service, view, colour)


def _with_workers(service: RunService, record: dict[str, Any]) -> dict[str, Any]:
    """A record with its workers' states in `backend_data["workers"]`, where a Kubernetes
    run keeps them, for a run of workers on this machine too (its agent's account)."""
    data = record.setdefault("backend_data", {})
    if "workers" not in data:
        from qwex_core.workers import local_worker_states

        if rows := local_worker_states(service.store.run_dir(str(record["id"]))):
            data["workers"] = rows
    return record


def _status_block(service: RunService, run: RunView, colour: bool | None) -> bool:
    """Print one run's `qwex status` lines; whether they are coloured (asked once)."""
    import shlex

    fields = [
        ("id", run.id),
        ("short id", short_id(run.id)),
        ("name", run.name or "-"),
        ("status", run.status),
        ("reason", run.reason or "-"),
        ("backend", run.backend),
        ("command", shlex.join(run.command)),
        ("exit code", "-" if run.exit_code is None else str(run.exit_code)),
        ("created", f"{run.created_at.isoformat()} ({ago(run.created_at)})"),
        ("started", run.started_at.isoformat() if run.started_at else "-"),
        ("finished", run.finished_at.isoformat() if run.finished_at else "-"),
        ("duration", duration(run.started_at, run.finished_at)),
        ("logs", str(service.store.run_dir(run.id))),
    ]
    if run.image and run.backend != "local":
        fields.insert(4, ("image", run.image))
    shown = dict(run.backend_data)
    if "workers" not in shown:  # a run of workers on this machine: its agent's account
        from qwex_core.workers import local_worker_states

        if rows := local_worker_states(service.store.run_dir(run.id)):
            shown["workers"] = rows
    for key, value in shown.items():
        name = key.replace("_", " ")
        if key == "workers" and isinstance(value, list):  # one line per worker, by rank
            from qwex_core.workers import row_text

            fields += [("worker", row_text(row)) for row in value if isinstance(row, dict)]
        elif isinstance(value, list):  # one line each, e.g. a Kubernetes run's attempts
            for number, item in enumerate(value, 1):
                fields.append((f"{name.removesuffix('s')} {number}", _item_text(item)))
        elif value is not None:  # a setting the run did not use (no queue): nothing to show
            fields.append((name, str(value)))
    from qwex_core.cli.terminal import colour_wanted, paint_status

    if colour is None:
        colour = colour_wanted(sys.stdout)
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if key == "status":
            value = paint_status(value, value, colour)
        click.echo(f"{key.ljust(width)}  {value}", color=colour or None)
    return colour


def _item_text(item: object) -> str:
    """A listed backend value on one line: `key value, key value` for a mapping."""
    if isinstance(item, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in item.items() if v is not None)
    return str(item)


@click.command()
@click.argument("run_id", metavar="RUN", shell_complete=complete_runs)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing until the run ends, then one status line on stderr; Ctrl-C stops "
    "following, the run goes on.",
)
@click.option(
    "-n",
    "--tail",
    type=click.IntRange(min=0),
    help="Only the last N lines, counted in both streams together (as `docker logs`).",
)
@click.option(
    "--since",
    metavar="WHEN",
    callback=lambda _ctx, _param, value: _since(value),
    help="Only lines written since WHEN: a duration before now (10m, 1h30m) or a time "
    "(2026-12-02T05:50:02Z, as -t prints it; no zone: local time).",
)
@click.option(
    "-t",
    "--timestamps",
    is_flag=True,
    help="Begin each line with the time it was written (RFC 3339, UTC, nanoseconds).",
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
@click.option(
    "--rank",
    type=click.IntRange(min=0),
    help="Only worker K's output, without the [K] prefix (a --nodes run's rank, an --array "
    "run's index); the output copied so far (add -f on a live run to copy it first).",
)
@click.pass_obj
def logs(
    state: State,
    run_id: str,
    follow: bool,
    tail: int | None,
    since: int | None,
    timestamps: bool,
    stream: str,
    as_json: bool,
    rank: int | None,
) -> None:
    """Print a run's output, kept in the run record even after its container or pod is gone,
    in the order the command wrote it (stdout and stderr each to its own output).

    \b
      qwex logs RUN --tail 50
      qwex logs -t --since 10m RUN
      qwex logs -f RUN            re-attach to a running run
      qwex logs --rank 1 RUN      worker 1's output (a --nodes or --array run)
    """
    from qwex_core.errors import QwexError, RunNotFound

    service = state.service()
    streams = ("stdout", "stderr") if stream == "all" else (stream,)
    full_id = service.store.resolve(run_id)
    if rank is not None:
        _worker_logs(service, full_id, rank, Shown(tail, None, False), as_json)
        return
    if not follow and service.final_view(full_id) is not None:  # it will not change: no model
        paths = {s: service.store.log_path(full_id, s) for s in streams}
        _print_logs(paths, Shown(tail, since, timestamps), as_json)
        return
    try:
        run = service.observe(full_id)
    except RunNotFound:
        raise
    except QwexError as exc:
        # An unreadable record: its logs may be intact, and are what is left of the run.
        paths = {s: service.store.log_path(full_id, s) for s in streams}
        if follow or not all(p.is_file() for p in paths.values()):
            raise
        from qwex_core.cli.output import note

        note(f"warning: {exc}; its logs follow")
        _print_logs(paths, Shown(tail, since, timestamps), as_json)
        return
    if follow and not as_json:
        from qwex_core.cli.output import note
        from qwex_core.cli.run_command import follow_run

        if (timestamps or since is not None) and not _has_write_times(service, run.id):
            note(NO_WRITE_TIMES)

        try:
            final = follow_run(
                service,
                run,
                tail=tail,
                since=since,
                timestamps=timestamps,
                streams=streams,
                cancel_on_interrupt=False,
            )
        except KeyboardInterrupt:
            note(
                f"stopped following; run {short_id(run.id)} goes on (`qwex cancel {short_id(run.id)}` stops it)"
            )
            raise click.exceptions.Exit(130) from None
        how = (
            final.status.value
            if final.reason in (None, "", final.status.value)
            else (f"{final.status.value}, {final.reason}")
        )
        note(f"run {short_id(run.id)} finished: {how}")
        return
    paths = {s: service.store.log_path(run.id, s) for s in streams}
    _print_logs(paths, Shown(tail, since, timestamps), as_json)


def _worker_logs(service: RunService, run_id: str, rank: int, shown: Shown, as_json: bool) -> None:
    """`qwex logs --rank K`: worker K's own output (`workers/K.log`), brought up to date."""
    from qwex_core.workers import ranks, worker_log

    if service.final_view(run_id) is None:
        run = service.observe(run_id)  # a live run: copy what its workers wrote so far
    else:
        run = service.store.load(run_id)
    known = ranks(run.spec)
    if rank not in known:
        what = "no workers" if len(known) == 1 else f"workers {known[0]} to {known[-1]}"
        raise click.BadParameter(
            f"run {short_id(run_id)} has {what} (--nodes, --array): no rank {rank}",
            param_hint="--rank",
        )
    _print_logs({"stdout": worker_log(service.store.run_dir(run_id), rank)}, shown, as_json)


NO_WRITE_TIMES = (
    "warning: this run's output has no write times (an older qwex recorded it): "
    "no timestamps, and --since cannot choose lines"
)


def _has_write_times(service: RunService, run_id: str) -> bool:
    """Whether the run keeps its write order (or has no output yet to lack it)."""
    from qwex_core.agent.order import INDEX_FILE

    if (service.store.run_dir(run_id) / INDEX_FILE).exists():
        return True
    paths = (service.store.log_path(run_id, s) for s in ("stdout", "stderr"))
    return all(not p.exists() or p.stat().st_size == 0 for p in paths)


class Shown(NamedTuple):
    """Which lines `qwex logs` shows, and how."""

    tail: int | None
    since: int | None
    timestamps: bool


def _since(value: str | None) -> int | None:
    """`--since` as ns since the epoch."""
    if value is None:
        return None
    from qwex_core.logtimes import SINCE_HELP, parse_since

    try:
        return parse_since(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a time: give {SINCE_HELP}") from None


def _print_logs(paths: dict[str, Path], shown: Shown, as_json: bool) -> None:
    """The logs at `paths` in write order, each stream to its own output (or together as
    JSON)."""
    from qwex_core.logs import Chunk, LogReader
    from qwex_core.logtimes import Stamper

    stamper = Stamper() if shown.timestamps else None

    def data(chunk: Chunk) -> bytes:
        return stamper(chunk) if stamper is not None else chunk.data

    with LogReader(paths, tail=shown.tail, since=shown.since) as reader:
        if reader.mode == "plain" and (shown.timestamps or shown.since is not None):
            from qwex_core.cli.output import note

            note(NO_WRITE_TIMES)
        if as_json:
            texts = {s: bytearray() for s in paths}
            for chunk in reader.chunks(final=True):
                texts[chunk.stream] += data(chunk)
            emit_json({s: text.decode("utf-8", "replace") for s, text in texts.items()})
            return
        sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        for chunk in reader.chunks(final=True):
            sinks[chunk.stream].write(data(chunk))
            sinks[chunk.stream].flush()
