"""`pip install qwex-remote` as a user who only submits gets it: the `remote` backend and
its client, none of the server's libraries; `qwex-remote[server]` adds them (issue 22).

Wheels of qwex-core and qwex-remote are built from the checkout and installed into a fresh
venv of its own, non-editable, their dependencies found as any install finds them (pip's
configured index and cache; `PIP_FIND_LINKS` is kept).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_support import Server, team_server

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SERVER_ONLY = {
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "psycopg-binary",
    "prometheus-client",
    "cryptography",
}
"""Distributions the server needs and a client must not get."""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheels of qwex-core and qwex-remote, built from the checkout."""
    out = tmp_path_factory.mktemp("wheels")
    work = tmp_path_factory.mktemp("sources")
    sources = []
    for name in ("qwex-core", "qwex-remote"):  # copied: a build writes next to its sources
        ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".qwex")
        shutil.copytree(REPO / name, work / name, ignore=ignore)
        sources.append(str(work / name))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), *sources],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    core, remote = sorted(out.glob("*.whl"))
    assert (core.name.split("-")[0], remote.name.split("-")[0]) == ("qwex_core", "qwex_remote")
    return core, remote


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheels: tuple[Path, Path]) -> Path:
    """A fresh venv with `pip install qwex-core qwex-remote` (the client side only)."""
    root = tmp_path_factory.mktemp("client")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    pip_install(root / "venv", *map(str, wheels))
    return root / "venv"


def pip_install(venv: Path, *wheels: str) -> None:
    links = " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), str(Path(wheels[0]).parent)]))
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-input", "-q", *wheels],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_FIND_LINKS": links},
    )
    assert done.returncode == 0, done.stderr[-3000:]


def distributions(venv: Path) -> set[str]:
    """The names of every distribution installed in `venv`, normalised."""
    code = (
        "import importlib.metadata as m, json, re\n"
        "print(json.dumps([re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() "
        "for d in m.distributions()]))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


def qwex(
    venv: Path, project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The venv's `qwex` in `project`, with a PATH of that venv only and no user config."""
    base = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(project.parent),
        "XDG_CONFIG_HOME": str(project.parent / "xdg"),
        "LANG": "C.UTF-8",
    }
    result = subprocess.run(
        [str(venv / "bin" / "qwex"), *args],
        capture_output=True,
        text=True,
        cwd=project,
        env={**base, **(env or {})},
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "laptop"
    folder.mkdir()
    (folder / "qwex.toml").write_text("")
    return folder


def test_a_client_install_brings_no_server_library(venv: Path, project: Path) -> None:
    installed = distributions(venv)
    assert {"qwex-core", "qwex-remote", "httpx"} <= installed
    assert not installed & SERVER_ONLY, sorted(installed & SERVER_ONLY)
    backends = qwex(venv, project, "backends")
    assert backends.returncode == 0, backends.stderr
    assert "remote" in backends.stdout
    helped = qwex(venv, project, "run", "-b", "remote", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage:" in helped.stdout


@pytest.mark.parametrize(
    "args", [("serve",), ("serve", "token", "add", "alice"), ("serve", "secret", "list")]
)
def test_serve_without_the_server_extra_says_what_to_install(
    venv: Path, project: Path, args: tuple[str, ...]
) -> None:
    result = qwex(venv, project, *args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qwex: error: qwex serve needs the server's libraries")
    assert lines[0].endswith("pip install 'qwex-remote[server]'")
    assert not list(project.parent.glob("**/server.db"))  # nothing was opened or made


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with team_server(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.mark.serve
def test_a_client_install_submits_to_a_server(venv: Path, project: Path, server: Server) -> None:
    """The client-only install runs a job on a real `qwex serve` and gets its output back."""
    (project / "qwex.toml").write_text(f'[remote]\nbase_url = "http://127.0.0.1:{server.port}"\n')
    env = {"QWEX_REMOTE_TOKEN": server.tokens["alice"]}
    run = qwex(venv, project, "run", "-b", "remote", "--", "echo", "from a client", env=env)
    assert (run.returncode, run.stdout) == (0, "from a client\n"), run.stderr


def test_the_server_extra_brings_the_server(
    tmp_path: Path, wheels: tuple[Path, Path], project: Path
) -> None:
    """`pip install 'qwex-remote[server]'` in a fresh venv: the libraries, and `qwex serve`
    makes a token in a database of its own."""
    core, remote = wheels
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip_install(venv, str(core), f"{remote}[server]")
    installed = distributions(venv)
    assert SERVER_ONLY - {"psycopg-binary"} <= installed, sorted(SERVER_ONLY - installed)
    data = tmp_path / "data"
    made = qwex(venv, project, "serve", "token", "add", "alice", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    assert len(made.stdout.strip()) >= 32
    assert (data / "server.db").is_file()
