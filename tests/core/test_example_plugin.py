"""Third-party plugins as users install them: the example distribution `examples/qwex-nice`
and the plugin written out in `docs/plugins.md`, each installed with qwex-core alone into
one fresh virtual environment, used through the CLI and put through the conformance suite."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import venv
from collections.abc import Callable
from pathlib import Path

import pytest
from qwex_core.plugin import hookspecs
from qwex_core.runners.base import Runner
from qwex_core.testing.conformance import RunnerConformance

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
CLEAN = {
    k: v for k, v in os.environ.items() if not k.startswith(("QWEX_", "PYTHON", "VIRTUAL_ENV"))
}

Qwex = Callable[..., subprocess.CompletedProcess[str]]


def guide_files() -> dict[str, str]:
    """The code blocks of the guide whose first line names a file of the qwex-bg distribution
    (`# qwex_bg/runner.py`), by that name."""
    files = {}
    for block in re.findall(r"^```(?:python|toml)\n(.*?)^```", GUIDE.read_text(), re.M | re.S):
        first, _, body = block.partition("\n")
        name = first.removeprefix("# ").strip()
        if re.fullmatch(r"(pyproject\.toml|qwex_bg/[\w/]+\.py|tests/[\w/]+\.py)", name):
            files[name] = body
    return files


def test_the_guide_documents_every_hook_and_runner_method() -> None:
    text = GUIDE.read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("qwex_")]
    methods = [
        name
        for name, _ in inspect.getmembers(Runner, inspect.isfunction)
        if not name.startswith("_")
    ]
    assert len(hooks) == 6 and "probe" in methods
    missing = [n for n in hooks + methods if not re.search(rf"`[^`\n]*\b{n}\(", text)]
    assert not missing, f"docs/plugins.md does not document {missing}"


def test_the_guide_s_plugin_is_complete() -> None:
    assert set(guide_files()) == {
        "pyproject.toml",
        "qwex_bg/__init__.py",
        "qwex_bg/plugin.py",
        "qwex_bg/runner.py",
        "tests/conftest.py",
        "tests/test_conformance.py",
    }


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding qwex-core, qwex-nice and the guide's qwex-bg; its bin folder."""
    base = tmp_path_factory.mktemp("third-party")
    guide_dist = base / "qwex-bg"
    for name, body in guide_files().items():
        (guide_dist / name).parent.mkdir(parents=True, exist_ok=True)
        (guide_dist / name).write_text(body)
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(ROOT / "qwex-core"),
            f"{ROOT / 'examples' / 'qwex-nice'}[test]",
            str(guide_dist),
        ],
        check=True,
        env=CLEAN,
        timeout=600,
    )
    return bin_dir


def in_venv(bin_dir: Path, cwd: Path) -> Qwex:
    def qwex(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "qwex"), *args],
            cwd=cwd,
            env=CLEAN,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return qwex


def conformance(bin_dir: Path, tests: Path, cwd: Path, not_applicable: int = 0) -> None:
    """The plugin's conformance tests pass in its venv: every case of the suite ran, and
    only `not_applicable` of them were skipped, each with the suite's not-applicable reason."""
    suite = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            str(tests),
        ],
        cwd=cwd,
        env=CLEAN,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert suite.returncode == 0, suite.stdout[-3000:]
    assert "PytestAssertRewriteWarning" not in suite.stdout, suite.stdout[-3000:]
    cases = [name for name in dir(RunnerConformance) if name.startswith("test_")]
    summary = suite.stdout.strip().splitlines()[-1]  # "18 passed, 3 skipped, 1 warning in 2s"
    counts = {
        kind: int(n)
        for n, kind in re.findall(r"(\d+) (\w+)", summary)
        if not kind.startswith("warning")
    }
    expected = {"passed": len(cases) - not_applicable, "skipped": not_applicable}
    assert counts == {k: n for k, n in expected.items() if n}, summary
    reasons = [line for line in suite.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("not applicable to this backend" in line for line in reasons), reasons


@pytest.mark.slow
def test_example_plugin_in_a_fresh_venv(third_party: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[tool.qwex.nice]\nniceness = 7\n")
    qwex = in_venv(third_party, project)
    backends = json.loads(qwex("backends", "--json").stdout)["backends"]
    assert {(b["name"], b["distribution"]) for b in backends} == {
        ("local", "qwex-core"),
        ("nice", "qwex-nice"),
        ("bg", "qwex-bg"),
    }
    result = qwex("run", "--backend", "nice", "--", "nice")  # `nice` alone prints the niceness
    assert result.returncode == 0, result.stderr
    assert result.stdout == "7\n"
    assert json.loads(qwex("list", "--json").stdout)[0]["backend"] == "nice"
    conformance(third_party, ROOT / "examples" / "qwex-nice" / "tests", tmp_path)


@pytest.mark.slow
def test_the_guide_s_plugin_in_a_fresh_venv(third_party: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "qwex.toml").write_text("")
    qwex = in_venv(third_party, project)
    result = qwex("run", "-b", "bg", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr.splitlines()[1]) == (3, "out\n", "err")
    tests = tmp_path / "bg-tests"
    tests.mkdir()
    for name in ("conftest.py", "test_conformance.py"):
        (tests / name).write_text(guide_files()[f"tests/{name}"])
    # The bg backend runs no workers: the three worker cases are not applicable to it.
    conformance(third_party, tests, tmp_path, not_applicable=3)
