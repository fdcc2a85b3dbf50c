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
KILL_WAIT = 20.0
"""Seconds `qwex rm -f` waits for a killed run's end to be recorded."""


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
    help="Kill a run that has not ended (SIGKILL, no grace period), then remove it; "
    "remove a run whose record cannot be read as it is.",
)
@click.pass_obj
def rm(state: State, run_ids: tuple[str, ...], force: bool) -> None:
    """Delete runs that have ended: their record, logs and name. Prints each removed id.

    A run that has not ended is not removed unless -f. Each RUN is removed if it can be;
    the others are named, one line each, and qwex exits 1.

    \b
      qwex rm 3f6bb3bbea15 train-7
      qwex rm -f $(qwex list -q -s running)
    """
    service = state.service()
    store = service.store
    failed = 0
    live: list[Run] = []
    done: set[str] = set()

    def remove(run_id: str, name: str | None) -> None:
        store.delete(run_id, name=name)
        click.echo(short_id(run_id))

    def fail(message: str) -> None:
        nonlocal failed
        failed += 1
        click.echo(f"qwex: error: {message}", err=True)

    for token in run_ids:
        try:
            run_id = store.resolve(token)
        except QwexError as exc:
            fail(str(exc))
            continue
        if run_id in done:
            continue
        done.add(run_id)
        try:
            run = service.observe(run_id)
        except QwexError as exc:
            if not force:
                fail(f"{exc} (`qwex rm -f {short_id(run_id)}` removes it as it is)")
                continue
            remove(run_id, None)  # an unreadable record: -f removes the folder as it is
            note(f"removed run {short_id(run_id)}, whose record could not be read")
            continue
        if run.is_final:
            remove(run_id, run.spec.name)
        elif not force:
            fail(
                f"run {short_id(run_id)} ({run.status.value}) has not ended: `qwex cancel` "
                "first, or `qwex rm -f` to kill and remove it; it was not removed"
            )
        else:
            live.append(service.kill(run))
    for run in live:
        current = service.wait(run, timeout=KILL_WAIT) if not run.is_final else run
        if not current.is_final:
            fail(
                f"run {short_id(run.id)} has not stopped {KILL_WAIT:g}s after SIGKILL "
                f"(still {current.status.value}); it was not removed"
            )
            continue
        remove(run.id, current.spec.name)
    if failed:
        raise click.exceptions.Exit(1)


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
        return [item for items in state.host.collect_garbage(config, dry) for item in items]

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
