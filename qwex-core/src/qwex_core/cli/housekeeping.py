"""`qwex rm` and `qwex prune`: the only commands that delete runs."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from qwex_core.agent.record import FINAL_STATUSES, STATUSES, UNREADABLE
from qwex_core.cli.completion import complete_runs
from qwex_core.cli.output import note
from qwex_core.errors import QwexError
from qwex_core.store import short_id

if TYPE_CHECKING:
    from qwex_core.cli.context import State
    from qwex_core.models import Run

FINAL = [s for s in STATUSES if s in FINAL_STATUSES]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def size_text(size: int) -> str:
    """Bytes as people read them: 812 B, 4.1 kB, 12.0 MB (powers of 1000, as `docker`)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def _age(value: str | None) -> float | None:
    """`7d`, `12h`, `30m`, `90s` as seconds (None: not given)."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
    if not match:
        raise click.BadParameter(
            f"{value!r} is not an age: give a number and a unit, s, m, h or d (e.g. 7d, 12h)",
            param_hint="--older-than",
        )
    return float(match.group(1)) * UNITS[match.group(2)]


def confirm_bulk(what: str, *, force: bool) -> None:
    """Go ahead with a bulk deletion only on a yes: `--force`, or `y` typed at a terminal.
    Without a terminal to ask (a script, a pipe), it is an error, as `docker system prune`
    has it: nothing is deleted by a command a script did not mean."""
    if force:
        return
    from qwex_core.cli.terminal import is_terminal

    if not is_terminal(sys.stdin):
        raise QwexError(
            f"{what}; nothing was removed: no terminal to ask, pass --force (-f) to go "
            "ahead or --dry-run to see what would go"
        )
    if not click.confirm(f"qwex: {what}. Go ahead?", default=False, err=True):
        raise QwexError("nothing was removed")


@click.command()
@click.argument("run_ids", metavar="RUN...", nargs=-1, required=True, shell_complete=complete_runs)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Cancel a run that has not ended, wait for it to stop, then remove it.",
)
@click.pass_obj
def rm(state: State, run_ids: tuple[str, ...], force: bool) -> None:
    """Delete runs that have ended: their record, logs and name.

    A run that has not ended is an error (nothing is deleted) unless -f.

    \b
      qwex rm 3f6bb3bbea15 train-7
      qwex rm -f $(qwex list -s running --json | jq -r '.[].id')
    """
    service = state.service()
    store = service.store
    ids = list(dict.fromkeys(store.resolve(r) for r in run_ids))  # every run named first
    runs: dict[str, Run] = {}
    broken: list[str] = []
    for run_id in ids:
        try:
            runs[run_id] = service.observe(run_id)
        except QwexError:
            if not force:
                raise
            broken.append(run_id)  # an unreadable record: -f removes the folder as it is
    live = [r for r in runs.values() if not r.is_final]
    if live and not force:
        shown = ", ".join(f"{short_id(r.id)} ({r.status.value})" for r in live)
        raise QwexError(
            f"run{'s' if len(live) > 1 else ''} {shown} {'have' if len(live) > 1 else 'has'} "
            "not ended: `qwex cancel` first, or `qwex rm -f` to cancel and remove; "
            "nothing was removed"
        )
    for run in live:
        service.cancel(run)
    for run in live:
        limit = run.spec.grace_period + 10
        current = service.wait(run, timeout=limit)
        if not current.is_final:
            raise QwexError(
                f"run {short_id(run.id)} has not stopped after {limit:g}s "
                f"(still {current.status.value}); it was not removed"
            )
        runs[run.id] = current
    for run_id in ids:
        found = runs.get(run_id)
        store.delete(run_id, name=found.spec.name if found is not None else None)
        click.echo(short_id(run_id))
    if broken:
        note(f"removed {len(broken)} run(s) with an unreadable record")


@click.command()
@click.option(
    "--older-than",
    "older_than",
    metavar="AGE",
    help="Only runs that ended at least this long ago: 30m, 12h, 7d (units s, m, h, d).",
)
@click.option(
    "-s",
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(FINAL),
    help="Only runs that ended in this status (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="With no --older-than or --status: delete every ended run without asking.",
)
@click.pass_obj
def prune(
    state: State, older_than: str | None, statuses: tuple[str, ...], dry_run: bool, force: bool
) -> None:
    """Delete runs that have ended (all of them, or those matching every option given),
    and print how many and how much space that freed. Runs that have not ended, and runs
    whose record cannot be read, are left alone.

    With no --older-than or --status, every ended run would go: at a terminal qwex asks
    first [y/N], saying how many and how much; without one it refuses unless --force.

    \b
      qwex prune --older-than 7d
      qwex prune --status failed --status cancelled --dry-run
      qwex prune -f                 every ended run, without asking
    """
    from qwex_core.store import dir_size

    age = _age(older_than)
    wanted = set(statuses) or set(FINAL_STATUSES)
    service = state.service()
    store = service.store
    now = time.time()
    chosen: list[dict[str, Any]] = []
    for record in service.list_records(statuses=wanted):
        if record.get("status") == UNREADABLE:
            continue
        if age is not None:
            ended = record.get("finished_at") or record.get("created_at")
            if not ended or now - datetime.fromisoformat(ended).timestamp() < age:
                continue
        chosen.append(record)
    if chosen and not dry_run and older_than is None and not statuses:
        size = sum(dir_size(store.run_dir(r["id"])) for r in chosen)
        plural = "" if len(chosen) == 1 else "s"
        confirm_bulk(
            f"prune with no filter deletes every ended run: {len(chosen)} run{plural}, "
            f"{size_text(size)}",
            force=force,
        )
    freed = 0
    for record in chosen:
        run_id = record["id"]
        if dry_run:
            freed += dir_size(store.run_dir(run_id))
        else:
            freed += store.delete(run_id, name=(record.get("spec") or {}).get("name"))
        click.echo(f"{short_id(run_id)}  {record['status']}")
    verb = "would free" if dry_run else "freed"
    done = "would delete" if dry_run else "deleted"
    plural = "" if len(chosen) == 1 else "s"
    click.echo(f"{done} {len(chosen)} run{plural}, {verb} {size_text(freed)}", err=True)


@click.command()
@click.option("-n", "--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option(
    "-f", "--force", is_flag=True, help="Remove what was found without asking [y/N] first."
)
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
@click.pass_obj
def gc(state: State, dry_run: bool, force: bool, as_json: bool) -> None:
    """Remove what backends left behind for runs that are final or unknown.

    Asks every installed backend (Docker: qwex's containers on the daemon; Kubernetes:
    qwex's Jobs and pods, and unused snapshot ConfigMaps, in the configured namespace).
    Only what a project of this machine provably made is considered (its owner token,
    from the project's .qwex/store-id): a teammate's leftovers on a shared daemon or
    cluster are never touched. Runs still going are brought up to date first; what a
    live run needs is left alone. The run records and
    logs stay: `qwex rm` and `qwex prune` delete those. Exits 1 when a backend could
    not be asked (its daemon or cluster is down), after what the others found.

    Before removing anything, qwex asks at a terminal [y/N], saying how many things would
    go; without a terminal it refuses unless --force (-f).
    """
    import json

    from qwex_core.garbage import Garbage

    config = state.service().config
    failures = len(state.host.load_errors)

    def collect(dry: bool) -> list[Garbage]:
        return [
            item
            for items in state.host.call("qwex_collect_garbage", config=config, dry_run=dry)
            for item in items
        ]

    found = collect(True)
    if found and not dry_run:
        kinds = sorted({item.kind for item in found})
        plural = "" if len(found) == 1 else "s"
        confirm_bulk(
            f"gc would remove {len(found)} leftover{plural} of ended runs "
            f"({', '.join(kinds)}; `qwex gc --dry-run` lists them)",
            force=force,
        )
        found = collect(False)
    unasked = len(state.host.load_errors) > failures  # each one named in a warning already
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in found], indent=2))
    else:
        if not found:
            note("nothing to remove" + (" in the backends that answered" if unasked else ""))
        verb = "would remove" if dry_run else "removed"
        for item in found:
            done = verb if dry_run or item.removed else "could not remove"
            click.echo(f"{done} {item.kind} {item.name}  run {item.run}: {item.why}")
    if unasked:
        raise SystemExit(1)
