"""The habits docker users bring: `-e NAME`, `list -q`, `rm -f` kills at once, `rm A B`
removes what it can, one id form in human output."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_support import TREE, Qwex, alive, assert_gone, tree_pids, wait_status


def _ids(qwex: Qwex) -> list[str]:
    return [r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)]


def test_env_without_a_value_passes_the_hosts_value(project: Path, qwex: Qwex) -> None:
    result = qwex(
        "run", "-e", "SEED", "-e", "MODE=x", "--", "sh", "-c", 'echo "$SEED $MODE"',
        env={"SEED": "42"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42 x\n"
    unset = qwex(
        "run",
        "-e",
        "QWEX_TEST_UNSET_VAR",
        "--",
        "sh",
        "-c",
        'echo "[${QWEX_TEST_UNSET_VAR-unset}]"',
    )
    assert unset.stdout == "[unset]\n" and "QWEX_TEST_UNSET_VAR" in unset.stderr


def test_list_quiet_prints_ids_only(project: Path, qwex: Qwex) -> None:
    qwex("run", "--", "true", check=True)
    qwex("run", "--", "false")
    ids = _ids(qwex)
    quiet = qwex("list", "-q", check=True)
    assert quiet.stdout.split("\n") == [i[-12:] for i in ids] + [""]
    assert qwex("list", "-q", "--no-trunc", check=True).stdout.split() == ids
    failed = qwex("list", "-q", "-s", "failed", check=True).stdout.split()
    assert len(failed) == 1
    removed = qwex("rm", *failed, check=True)
    assert removed.stdout.split() == failed


def test_rm_force_kills_at_once(project: Path, qwex: Qwex) -> None:
    # The whole tree ignores SIGINT and SIGTERM and the grace period is longer than `rm -f`
    # waits (KILL_WAIT): only an immediate SIGKILL of every process lets it succeed.
    script = "trap '' TERM INT; " + TREE
    started = qwex("run", "-d", "--grace-period", "600", "--", "sh", "-c", script, check=True)
    run_id = started.stdout.strip()
    pids = tree_pids(project)
    assert all(alive(pid) for pid in pids)
    removed = qwex("rm", "-f", run_id, timeout=90)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == run_id
    assert _ids(qwex) == []
    assert_gone(pids)  # nothing left behind: the command, its child, its grandchild


def test_rm_of_several_removes_what_it_can_and_reports_the_rest(project: Path, qwex: Qwex) -> None:
    qwex("run", "--name", "done", "--", "true", check=True)
    qwex("run", "--name", "also-done", "--", "true", check=True)
    live = qwex("run", "-d", "--name", "slow", "--", "sleep", "60", check=True).stdout.strip()
    result = qwex("rm", "done", "nothing-here", "slow", "also-done")
    assert result.returncode == 1
    assert len(result.stdout.split()) == 2  # the two ended runs, removed
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2, result.stderr
    assert "nothing-here" in errors[0]
    assert live[-12:] in errors[1] and "not ended" in errors[1]
    assert [i[-12:] for i in _ids(qwex)] == [live[-12:]]
    qwex("rm", "-f", "slow", check=True)


def test_human_output_uses_the_short_id(project: Path, qwex: Qwex) -> None:
    detached = qwex("run", "-d", "--", "sleep", "60", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", detached), detached
    full = _ids(qwex)[0]
    assert full.endswith(detached)
    wait_status(qwex, detached, {"running"})
    cancelled = qwex("cancel", detached, check=True)
    assert cancelled.stdout.split()[0] == detached
    assert full not in cancelled.stdout + cancelled.stderr
    long = qwex("run", "-d", "--no-trunc", "--", "true", check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", long) and long in _ids(qwex)
    as_json = json.loads(qwex("cancel", "--json", detached, check=True).stdout)
    assert as_json[0]["id"] == full
    banner = qwex("run", "--", "true", check=True)
    shown = re.findall(r"[0-9a-f-]{12,36}", banner.stderr)
    assert shown and all(len(s) == 12 for s in shown), banner.stderr
