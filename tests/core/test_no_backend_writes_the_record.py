"""No backend writes a run's record itself: the agent does, or core does from what the
backend observes (`qwex_core.observed`). A backend may save its `backend_data` in `start`,
before anything of the run exists (docs/plugins.md); every other record write (a status
change, an end, a backdated time) is core's. Read from each backend's source, so a copy of
core's record logic in a backend fails here."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

RECORD_WRITES = {"record_end", "transition", "backdate", "write_record", "save_record"}
"""Core's record writers (`RunStore.record_end`, `qwex_core.agent.record`'s)."""
MAY_SAVE_IN = {"start", "_start"}
"""Where a backend saves the record once, before the agent starts (its `backend_data`)."""
BACKENDS = [
    "qwex_docker",
    "qwex_k8s",
    pytest.param(
        "qwex_remote",
        marks=pytest.mark.xfail(
            strict=True, reason="the remote runner moves onto ObservedRunner in its own branch"
        ),
    ),
]


class Writes(ast.NodeVisitor):
    """The record writes of one module, each named with the function it is in."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.found: list[str] = []
        self.function = "<module>"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer, self.function = self.function, node.name
        self.generic_visit(node)
        self.function = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        callee = node.func
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        saves = (
            name == "save"
            and isinstance(callee, ast.Attribute)
            and ast.unparse(callee.value).endswith("store")
            and self.function not in MAY_SAVE_IN
        )
        if name in RECORD_WRITES or saves:
            self.found.append(f"{self.shown}:{node.lineno}: {name}() in {self.function}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if node.value == "run.json":
            self.found.append(f"{self.shown}:{node.lineno}: 'run.json'")


def record_writes(package: str) -> list[str]:
    """Each place in `package` (its server excepted: it runs core's own service) that
    writes a run's record, as `file:line: what`."""
    module = importlib.import_module(package)
    root = Path(str(module.__file__)).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if "server" in path.relative_to(root).parts:
            continue
        writes = Writes(str(path.relative_to(root.parent)))
        writes.visit(ast.parse(path.read_text(), str(path)))
        found += writes.found
    return found


@pytest.mark.parametrize("package", BACKENDS)
def test_no_backend_writes_a_runs_record(package: str) -> None:
    assert record_writes(package) == []


def test_the_check_finds_a_record_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is not blind: a backend recording an end itself is found."""
    (tmp_path / "qwex_badend").mkdir()
    (tmp_path / "qwex_badend" / "__init__.py").write_text("")
    (tmp_path / "qwex_badend" / "runner.py").write_text(
        "class R:\n"
        "    def start(self, run):\n"
        "        self.store.save(run)\n"
        "    def probe(self, run):\n"
        "        self.store.save(run)\n"
        "        self.store.record_end(run, 'lost', 'gone')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert record_writes("qwex_badend") == [
        "qwex_badend/runner.py:5: save() in probe",
        "qwex_badend/runner.py:6: record_end() in probe",
    ]
