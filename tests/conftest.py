"""Shared fixtures: an isolated project directory and a way to run the real `qwex` CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import warm_cli

pytest_plugins = ["qwex_core.testing"]

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # Started in the background by a non-interactive shell (as CI may be), SIGINT arrives
    # ignored and every child would inherit that: the Ctrl-C tests could not press Ctrl-C.
    # A handler of our own is reset to the default in each child the tests start.
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:  # started under nohup: the same for SIGHUP
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture
def project(qwex_project: Path) -> Path:
    """An empty project (it has a qwex.toml) as the working directory, with no user config."""
    return qwex_project


@pytest.fixture
def qwex() -> object:
    """`qwex(*args, ...)` runs the installed console script; see `run_qwex`."""
    return run_qwex


def run_qwex(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    check: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `qwex` console script like a user would (in the fast loop, forked from
    this process with the libraries loaded: see warm_cli)."""
    script = str(Path(sys.executable).parent / "qwex")
    full_env = {**os.environ, **(env or {})}
    if warm_cli.usable(full_env):
        result = warm_cli.run(script, args, cwd, full_env, timeout)
    else:
        result = subprocess.run(
            [script, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
        )
    if check and result.returncode != 0:
        raise AssertionError(f"qwex {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


FIXTURE_MARKERS = {
    "docker_api": "docker",
    "k8s_api": "k8s",
    "postgres_url": "postgres",
    "user_root": "users",
    "built_agent": "slow",
    "arm64_agent": "slow",
    "helm": "helm",
    "browser": "browser",
    "slurm_cluster": "slurm",
}
"""The fixture through which each real component is reached (or the agent is built), and the
marker it implies."""
SHARED_GROUPS = (
    ("cluster", ("k8s", "helm", "live")),
    ("docker", ("docker", "users")),
    ("slurm", ("slurm",)),
)
"""Under `pytest -n N --dist loadgroup` (`nox -s tests`), the tests of each group run one after
another on one worker, beside the tests of the other groups and the rest: one test's `qwex gc`
takes every final run's container on this daemon, or Job in its namespace; the cluster's
tests count on its quota being theirs, and the Slurm tests on the node's CPUs (one of them
stops its slurmd for a minute)."""
SERVER_HELPERS = ("make_server", "team_server")
"""tests/remote/server_support.py's ways to a real `qwex serve`: a module using them is `serve`."""


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark a test by what it reaches: a component through its fixture (directly or through
    another fixture), a real `qwex serve` through the server helpers. `nox -s unit` selects
    by these markers, so it can never pick a test that needs the Docker daemon, the cluster,
    PostgreSQL, the test users or a server only because its module forgot the marker."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        wanted = {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in fixtures}
        module = getattr(item, "module", None)
        if any(getattr(module, "__dict__", {}).get(name) for name in SERVER_HELPERS):
            wanted.add("serve")
        for marker in wanted:
            if not item.get_closest_marker(marker):
                item.add_marker(marker)
        group = next(
            (g for g, markers in SHARED_GROUPS if any(map(item.get_closest_marker, markers))), None
        ) or _module_group(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))


def _module_group(item: pytest.Item) -> str | None:
    """The module's name when the test uses a fixture made once per module (a venv, built
    wheels, a server): each xdist worker would make its own, so they run on one (two workers
    each waiting out the broken runners' conformance suite cost 140 s more)."""
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info else ()
    if any(d[-1].scope in ("module", "class", "package") for d in defs if d):
        return item.nodeid.split("::", 1)[0]
    return None
