"""Nothing is deleted in bulk without a yes: `qwex prune` with no filter and `qwex gc` ask
`[y/N]` at a terminal and refuse without one unless `--force`, as `docker system prune`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from cli_support import Qwex, Terminal

GARBAGE_PLUGIN = '''
"""A backend's leftovers for `qwex gc`: one file per leftover in $LEFTOVERS."""
import os
from pathlib import Path

from qwex_core.garbage import Garbage
from qwex_core.plugin import hookimpl


@hookimpl
def qwex_collect_garbage(config, dry_run):
    found = []
    for path in sorted(Path(os.environ["LEFTOVERS"]).iterdir()):
        if not dry_run:
            path.unlink()
        found.append(Garbage("files", "file", path.name, "-", "its run is gone", not dry_run))
    return found
'''


def _ids(qwex: Qwex) -> list[str]:
    return [r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)]


def test_prune_with_no_filter_asks_at_a_terminal_and_refuses_without_one(
    project: Path, qwex: Qwex
) -> None:
    qwex("run", "--", "echo", "one", check=True)
    qwex("run", "--", "sh", "-c", "exit 3")
    before = _ids(qwex)
    assert len(before) == 2

    refused = qwex("prune")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    assert "2 runs" in refused.stderr
    assert _ids(qwex) == before

    no = Terminal("prune", cwd=project)
    shown = no.read_until("[y/N]")
    assert "2 runs" in shown and re.search(r"\d(\.\d)? [kMG]?B\b", shown)  # how many, how much
    no.type("n\n")
    code, _ = no.finish()
    assert code == 1 and _ids(qwex) == before

    yes = Terminal("prune", cwd=project)
    yes.read_until("[y/N]")
    yes.type("y\n")
    code, shown = yes.finish()
    assert code == 0, shown
    assert "deleted 2 runs" in shown and _ids(qwex) == []

    qwex("run", "--", "true", check=True)
    qwex("run", "--", "false")
    # A filter is a choice already: no question.
    assert "deleted 1 run" in qwex("prune", "--status", "failed", check=True).stderr
    # --dry-run deletes nothing: no question either.
    assert "would delete 1 run" in qwex("prune", "--dry-run", check=True).stderr
    forced = qwex("prune", "-f", check=True)
    assert "deleted 1 run" in forced.stderr and _ids(qwex) == []


def test_gc_asks_at_a_terminal_and_refuses_without_one(
    project: Path, qwex: Qwex, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "leftovers_plugin.py").write_text(GARBAGE_PLUGIN)
    leftovers = tmp_path / "leftovers"
    leftovers.mkdir()
    env = {
        "QWEX_PLUGINS": "leftovers_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "LEFTOVERS": str(leftovers),
    }
    for name in ("a", "b", "c"):
        (leftovers / name).touch()

    listed = qwex("gc", "--dry-run", env=env, check=True)
    assert listed.stdout.count("would remove file") == 3
    refused = qwex("gc", env=env)
    assert refused.returncode == 1, refused.stderr
    assert "3 " in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in leftovers.iterdir()) == ["a", "b", "c"]

    no = Terminal("gc", cwd=project, env=env)
    assert "3 " in no.read_until("[y/N]")
    no.type("\n")  # the default is no
    code, _ = no.finish()
    assert code == 1 and len(list(leftovers.iterdir())) == 3

    yes = Terminal("gc", cwd=project, env=env)
    yes.read_until("[y/N]")
    yes.type("y\n")
    code, shown = yes.finish()
    assert code == 0, shown
    assert shown.count("removed file") == 3 and list(leftovers.iterdir()) == []

    (leftovers / "d").touch()
    forced = qwex("gc", "--force", env=env, check=True)
    assert "removed file d" in forced.stdout and list(leftovers.iterdir()) == []
    # Nothing to remove: nothing to ask.
    assert qwex("gc", env=env).returncode == 0


def test_gc_names_a_backend_it_could_not_ask_once(
    project: Path, qwex: Qwex, tmp_path: Path
) -> None:
    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "leftovers_plugin.py").write_text(GARBAGE_PLUGIN)
    (plugin_dir / "down_plugin.py").write_text(
        "from qwex_core.plugin import hookimpl\n\n\n"
        "@hookimpl\n"
        "def qwex_collect_garbage(config, dry_run):\n"
        "    raise ConnectionError('the daemon is down')\n"
    )
    leftovers = tmp_path / "leftovers"
    leftovers.mkdir()
    (leftovers / "a").touch()
    env = {
        "QWEX_PLUGINS": "leftovers_plugin,down_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "LEFTOVERS": str(leftovers),
    }
    result = qwex("gc", "--force", env=env)
    assert result.returncode == 1
    assert "removed file a" in result.stdout and list(leftovers.iterdir()) == []
    assert result.stderr.count("the daemon is down") == 1, result.stderr
