"""A backend that raises in any runner method names itself in one line and breaks nothing
else: no traceback, no lost record, every other run still listed, and the plugins told of
the end exactly once (`qwex_run_finished` in a `finally`)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cli_support import Qwex

FLAKY_PLUGIN = '''
"""A local runner that raises RuntimeError in the method named by $FLAKY_RAISE."""
import os
from pathlib import Path

from qwex_core.plugin import hookimpl
from qwex_core.runners.local import LocalRunner


def _maybe(method):
    if method in os.environ.get("FLAKY_RAISE", "").split(","):
        raise RuntimeError(f"flaky {method} broke")


class FlakyRunner(LocalRunner):
    def probe(self, run):
        _maybe("probe")
        return super().probe(run)

    def refresh(self, run):
        _maybe("refresh")
        return super().refresh(run)

    def cancel(self, run, **kwargs):
        _maybe("cancel")
        return super().cancel(run, **kwargs)

    def explain(self, run):
        _maybe("explain")
        return super().explain(run)

    def cleanup(self, run):
        _maybe("cleanup")
        return super().cleanup(run)

    def wait_for_change(self, run, seconds):
        _maybe("wait_for_change")
        return super().wait_for_change(run, seconds)


@hookimpl
def qwex_register_runners(register):
    register("flaky", FlakyRunner, description="raises where asked")


@hookimpl
def qwex_run_finished(run):
    with open(os.environ["FINISHED"], "a") as fh:
        fh.write(run.id + "\\n")
'''


@pytest.fixture
def flaky(project: Path, tmp_path: Path) -> dict[str, str]:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "flaky_plugin.py").write_text(FLAKY_PLUGIN)
    return {
        "QWEX_PLUGINS": "flaky_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "FINISHED": str(tmp_path / "finished"),
    }


def finished(env: dict[str, str]) -> list[str]:
    path = Path(env["FINISHED"])
    return path.read_text().split() if path.exists() else []


def one_line_naming_the_backend(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if "failed in" in line]
    assert lines and all("backend" in line for line in lines), stderr
    assert any("RuntimeError: flaky" in line for line in lines), stderr


@pytest.mark.parametrize("method", ["probe", "refresh"])
def test_a_backend_failing_to_look_at_a_run_leaves_every_other_command_working(
    flaky: dict[str, str], qwex: Qwex, method: str
) -> None:
    local = qwex("run", "-d", "--no-trunc", "--", "sleep", "30", env=flaky, check=True)
    run = qwex("run", "-d", "--no-trunc", "-b", "flaky", "--", "sleep", "30", env=flaky, check=True)
    run_id = run.stdout.strip()
    env = {**flaky, "FLAKY_RAISE": method}
    status = qwex("status", run_id, env=env)
    assert status.returncode == 1
    one_line_naming_the_backend(status.stderr)
    listed = qwex("list", "--json", env=env)
    one_line_naming_the_backend(listed.stderr)
    ids = {r["id"] for r in json.loads(listed.stdout)}
    assert {run_id, local.stdout.strip()} <= ids  # the flaky run listed as its record stands
    record = json.loads((Path.cwd() / ".qwex" / "runs" / run_id / "run.json").read_text())
    assert record["status"] == "running"
    qwex("cancel", run_id, env=flaky, check=True)
    qwex("cancel", local.stdout.strip(), env=flaky, check=True)


@pytest.mark.parametrize("method", ["explain", "cleanup"])
def test_a_backend_failing_at_the_end_still_lets_plugins_know_once(
    flaky: dict[str, str], qwex: Qwex, method: str
) -> None:
    env = {**flaky, "FLAKY_RAISE": method}
    result = qwex("run", "--no-trunc", "-b", "flaky", "--", "sh", "-c", "exit 3", env=env)
    assert result.returncode == 3, result.stderr
    one_line_naming_the_backend(result.stderr)
    run_id = json.loads(qwex("list", "--json", env=flaky, check=True).stdout)[0]["id"]
    assert finished(flaky) == [run_id]
    shown = json.loads(qwex("status", run_id, "--json", env=env, check=True).stdout)
    assert (shown["status"], shown["exit_code"]) == ("failed", 3)
    assert finished(flaky) == [run_id]


def test_a_backend_failing_to_cancel_names_itself(flaky: dict[str, str], qwex: Qwex) -> None:
    run = qwex("run", "-d", "--no-trunc", "-b", "flaky", "--", "sleep", "30", env=flaky, check=True)
    run_id = run.stdout.strip()
    result = qwex("cancel", run_id, env={**flaky, "FLAKY_RAISE": "cancel"})
    assert result.returncode == 1
    one_line_naming_the_backend(result.stderr)
    qwex("cancel", run_id, env=flaky, check=True)


def test_a_backend_failing_to_wait_for_a_change_names_itself(
    flaky: dict[str, str], qwex: Qwex
) -> None:
    run = qwex("run", "-d", "--no-trunc", "-b", "flaky", "--", "sleep", "30", env=flaky, check=True)
    run_id = run.stdout.strip()
    result = qwex("wait", run_id, env={**flaky, "FLAKY_RAISE": "wait_for_change"}, timeout=30)
    assert result.returncode == 1
    one_line_naming_the_backend(result.stderr)
    qwex("cancel", run_id, env=flaky, check=True)


EXPLAINING_PLUGIN = """
import os

from qwex_core.plugin import hookimpl
from qwex_core.runners.local import LocalRunner


class ExplainingRunner(LocalRunner):
    def explain(self, run):
        return "explained by the backend"


class CorrectingRunner(LocalRunner):
    def explain(self, run):
        return "failed", "stopped at its time limit"


@hookimpl
def qwex_register_runners(register):
    register("explaining", ExplainingRunner)
    register("correcting", CorrectingRunner)


@hookimpl
def qwex_run_finished(run):
    with open(os.environ["FINISHED"], "a") as fh:
        fh.write(run.id + " " + str(run.reason) + "\\n")
"""


def test_qwex_list_is_the_first_to_see_an_end_it_applies_explain_and_the_hook(
    project: Path, tmp_path: Path, qwex: Qwex
) -> None:
    """A detached run ends with nobody watching: the first command to see the end, even
    `qwex list`, asks the backend's `explain` and tells the plugins (once)."""
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "explaining_plugin.py").write_text(EXPLAINING_PLUGIN)
    env = {
        "QWEX_PLUGINS": "explaining_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "FINISHED": str(tmp_path / "finished"),
    }
    run = qwex("run", "-d", "--no-trunc", "-b", "explaining", "--", "true", env=env, check=True)
    run_id = run.stdout.strip()
    record = project / ".qwex" / "runs" / run_id / "run.json"
    for _ in range(600):  # the agent writes the end itself; nothing else looks meanwhile
        if json.loads(record.read_text())["status"] == "succeeded":
            break
        time.sleep(0.05)
    listed = json.loads(qwex("list", "--json", env=env, check=True).stdout)
    assert listed[0]["reason"] == "explained by the backend"
    shown = json.loads(qwex("status", run_id, "--json", env=env, check=True).stdout)
    assert shown["reason"] == "explained by the backend"
    assert Path(env["FINISHED"]).read_text() == f"{run_id} explained by the backend\n"


def test_explain_may_correct_the_status_the_agent_recorded(
    project: Path, tmp_path: Path, qwex: Qwex
) -> None:
    """`explain` returning (status, reason): a scheduler's limit reached the agent as a
    plain signal; the end is recorded again, with the status the backend knows, and the
    plugins are told that one."""
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "explaining_plugin.py").write_text(EXPLAINING_PLUGIN)
    env = {
        "QWEX_PLUGINS": "explaining_plugin",
        "QWEX_DISABLE_PLUGINS": "docker,k8s,remote",
        "PYTHONPATH": str(plugin_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "FINISHED": str(tmp_path / "finished"),
    }
    done = qwex("run", "--json", "-b", "correcting", "--", "true", env=env)
    run_id = json.loads(done.stdout)["id"]
    shown = json.loads(qwex("status", run_id, "--json", env=env, check=True).stdout)
    assert (shown["status"], shown["reason"]) == ("failed", "stopped at its time limit")
    assert [h["status"] for h in shown["history"]][-2:] == ["succeeded", "failed"]
    assert Path(env["FINISHED"]).read_text() == f"{run_id} stopped at its time limit\n"
