"""`qwex completion bash|zsh|fish`, and what completes a run, a backend or a profile.

Click completes commands and options; the callbacks here (`shell_complete=` of the
arguments and options that take them) add run ids and names, backends and profiles.
A callback never fails: whatever goes wrong (no project, a bad config) completes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

    from qwex_core.plugin.manager import PluginHost

COMPLETE_VAR = "_QWEX_COMPLETE"
"""The environment variable that asks `qwex` for completions (click's protocol)."""
SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell code that makes SHELL complete qwex's commands, options, run ids and
    names, backends and profiles.

    \b
      bash:  eval "$(qwex completion bash)"     in ~/.bashrc
      zsh:   eval "$(qwex completion zsh)"      in ~/.zshrc
      fish:  qwex completion fish > ~/.config/fish/completions/qwex.fish
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None, shell  # click knows the three SHELLS
    root = ctx.find_root().command
    click.echo(cls(root, {}, "qwex", COMPLETE_VAR).source())


def _project(ctx: click.Context) -> Path:
    from qwex_core.paths import find_project_dir

    project = ctx.find_root().params.get("project")
    return Path(project).resolve() if project else find_project_dir()


def _host(ctx: click.Context) -> PluginHost:
    host = getattr(ctx.find_root().obj, "host", None)
    if host is None:
        from qwex_core.plugin.manager import PluginHost

        host = PluginHost()
    return host


def complete_runs(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """Short ids of the project's runs (newest first, with status and command as help), then
    their names."""
    return _runs(ctx, incomplete, live_only=False)


def complete_live_runs(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """Like `complete_runs`, only the runs that have not ended as their record stands (what
    `qwex cancel` can still stop)."""
    return _runs(ctx, incomplete, live_only=True)


def _runs(ctx: click.Context, incomplete: str, *, live_only: bool) -> list[Any]:
    from click.shell_completion import CompletionItem

    items: list[CompletionItem] = []
    try:
        from qwex_core.agent.record import FINAL_STATUSES
        from qwex_core.store import RunStore, short_id

        store = RunStore(_project(ctx))
        offered: set[str] = set()
        for record in store.iter_records():
            if live_only and record.get("status") in FINAL_STATUSES:
                continue
            offered.add(str(record.get("id")))
            sid = str(record.get("short_id") or short_id(str(record.get("id"))))
            if sid.startswith(incomplete):
                spec = record.get("spec") or {}
                help_ = " ".join([str(record.get("status")), *map(str, spec.get("command") or [])])
                items.append(CompletionItem(sid, help=help_[:60]))
        names = sorted(os.listdir(store.names)) if store.names.is_dir() else []
        for name in names:
            owner = store.name_owner(name) if name.startswith(incomplete) else None
            if owner is not None and owner in offered:
                items.append(CompletionItem(name, help=f"run {short_id(owner)}"))
    except Exception:  # completion must never print a traceback into the shell
        return items
    return items


def complete_backends(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """The installed backends."""
    try:
        names = sorted(_host(ctx).runners)
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_profiles(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    """The profiles the project's configuration defines (none when it cannot be read)."""
    try:
        from qwex_core.config import load_config

        host = _host(ctx)
        names = sorted(load_config(_project(ctx), host.config_sections).core.profiles)
    except Exception:
        return []
    return [n for n in names if n.startswith(incomplete)]
