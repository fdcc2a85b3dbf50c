"""`nox -s gen` and `nox -s gen_check` (tools/gen_client.py) on a copy of the repository's
spec, client and adapter tests: a bad spec never replaces the client, a stale one is named."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the generator and the adapter's tests per case

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / "tools" / "gen_client.py"
CLIENT = "qwex-remote/src/qwex_remote/client"
SPEC = "qwex-remote/openapi.json"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """What the tool touches, copied: the spec, its config, qwex_remote, the adapter's tests."""
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "qwex-remote" / "src", copy / "qwex-remote" / "src", ignore=ignore)
    for name in ("openapi.json", "openapi-client.yaml"):
        shutil.copy(REPO / "qwex-remote" / name, copy / "qwex-remote" / name)
    (copy / "tests" / "remote").mkdir(parents=True)
    for name in ("conftest.py", "warm_cli.py"):  # the top conftest imports warm_cli
        shutil.copy(REPO / "tests" / name, copy / "tests")
    for name in ("conftest.py", "server_support.py", "test_adapter.py"):
        shutil.copy(REPO / "tests" / "remote" / name, copy / "tests" / "remote")
    return copy


def tool(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=240,
    )


def digest(root: Path) -> dict[str, str]:
    """sha256 of the spec and of every file of the client (no bytecode)."""
    files = [root / SPEC, *(root / CLIENT).rglob("*")]
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.is_file() and "__pycache__" not in p.parts
    }


def spec_with(root: Path, change: str, new: str) -> Path:
    text = (root / SPEC).read_text()
    assert change in text
    path = root / "changed.json"
    path.write_text(text.replace(change, new, 1))
    return path


@pytest.mark.parametrize(
    "bad",
    ["this is not JSON", json.dumps({"openapi": "3.1.0", "info": {"title": "x"}, "paths": {}})],
    ids=["not-json", "no-info-version"],
)
def test_an_invalid_spec_leaves_the_client_and_spec_byte_for_byte(root: Path, bad: str) -> None:
    before = digest(root)
    (root / "bad.json").write_text(bad)
    result = tool(root, "gen", "--spec", str(root / "bad.json"))
    assert result.returncode == 1
    assert "error: openapi-python-client" in result.stderr
    assert f"{CLIENT}) and {SPEC} are unchanged" in result.stderr
    assert "Traceback" not in result.stderr
    assert digest(root) == before


def test_a_client_that_breaks_the_adapter_is_rolled_back(root: Path) -> None:
    before = digest(root)
    renamed = spec_with(root, '"operationId": "submit_job"', '"operationId": "queue_job"')
    result = tool(root, "gen", "--spec", str(renamed))
    assert result.returncode == 1, result.stdout
    assert "the adapter's tests (tests/remote/test_adapter.py)" in result.stderr
    assert "cannot import name 'submit_job'" in result.stderr
    assert digest(root) == before
    assert not list((root / CLIENT).parent.glob(".client-backup-*"))


def test_a_good_spec_is_swapped_in(root: Path) -> None:
    described = spec_with(root, "no token needed", "no token ever needed")
    result = tool(root, "gen", "--spec", str(described))
    assert result.returncode == 0, result.stderr
    assert "changed: api/server/health.py, (openapi.json)" in result.stdout
    assert "no token ever needed" in (root / CLIENT / "api/server/health.py").read_text()
    assert (root / SPEC).read_text() == described.read_text()
    # gen_check compares with the app's spec, which still says "no token needed".
    stale = tool(root, "check")
    assert stale.returncode == 1
    assert f"{SPEC} differs from what the app exports" in stale.stderr
    assert f"{CLIENT}/api/server/health.py differs" in stale.stderr


def test_gen_check_names_each_stale_file_and_what_to_run(root: Path) -> None:
    current = tool(root, "check")
    assert (current.returncode, current.stdout) == (
        0,
        "the spec and the generated client are current\n",
    )
    with open(root / CLIENT / "models" / "job_info.py", "a") as fh:
        fh.write("# edited by hand\n")
    (root / CLIENT / "models" / "extra.py").write_text("")
    (root / CLIENT / "api" / "server" / "health.py").unlink()
    stale = tool(root, "check")
    assert stale.returncode == 1
    for name in ("models/job_info.py", "models/extra.py", "api/server/health.py"):
        assert f"{CLIENT}/{name} differs from what the generator writes" in stale.stderr
    assert "run `nox -s gen`" in stale.stderr
    assert "openapi.json" not in stale.stderr


def test_an_interrupted_run_is_named_before_anything_is_touched(root: Path) -> None:
    leftover = (root / CLIENT).parent / ".client-backup-x1"
    leftover.mkdir()
    before = digest(root)
    result = tool(root, "gen")
    assert result.returncode == 1
    assert "an interrupted `nox -s gen` left the old client in" in result.stderr
    assert digest(root) == before


def test_a_run_stopped_while_it_tries_the_new_client_puts_the_old_one_back(root: Path) -> None:
    before = digest(root)
    described = spec_with(root, "no token needed", "no token ever needed")
    proc = subprocess.Popen(
        [sys.executable, str(TOOL), "gen", "--spec", str(described), "--root", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list((root / CLIENT).parent.glob(".client-backup-*")):  # the new one is in
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert digest(root) == before
    assert not list((root / CLIENT).parent.glob(".client-backup-*"))
