"""`qwex k8s gc`, added to the qwex CLI by the k8s plugin (the client is imported inside)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from qwex_core.cli.context import State


@click.group()
def k8s() -> None:
    """The Kubernetes backend's own commands."""


@k8s.command("gc")
@click.option("-n", "--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
@click.pass_obj
def gc(state: State, dry_run: bool, as_json: bool) -> None:
    """Delete qwex's Jobs whose run is final or unknown, and unused snapshot ConfigMaps.

    Looks in the configured namespace ([tool.qwex.k8s] namespace, else the context's),
    at the Jobs this host created. Runs still going are brought up to date first.
    """
    from qwex_k8s import gc as garbage
    from qwex_k8s.client import connect
    from qwex_k8s.settings import K8sSettings

    settings = state.service().config.section("k8s", K8sSettings)
    conn = connect(settings)
    rows = garbage.describe(garbage.collect(conn.api, conn.namespace, dry_run=dry_run))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"qwex: nothing to remove in namespace {conn.namespace}", err=True)
    verb = "would remove" if dry_run else "removed"
    for row in rows:
        done = verb if dry_run or row["removed"] else "could not remove"
        click.echo(f"{done} {row['kind']} {row['name']}  run {row['run']}: {row['why']}")
