"""Core owns every write of a run's record: a backend only says what it sees (`probe`,
`observe`) and keeps where to find its run (`backend_data`, saved in `start` before anything
runs). Read from the backends' own source, so a copy of the record machinery in a backend
fails here, whoever adds it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["qwex-docker", "qwex-k8s", "qwex-remote", "qwex-agent", "qwex-slurm"]
RECORD_WRITES = {"record_end", "transition", "backdate", "write_record"}
"""What changes a record's status, history or end: core's alone."""


NOT_YET: set[str] = set()
"""Backends still moving onto `qwex_core.observed` (each leaves this set as it moves)."""


def record_writes(path: Path, root: Path = ROOT) -> list[str]:
    """Each record write in `path` outside `start`, as `file:line name`."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func
            name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
            saving = name == "save" and "store" in ast.unparse(callee)
            if name in RECORD_WRITES or (saving and func.name != "start"):
                found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(callee)}")
    return sorted(set(found))


def test_no_backend_writes_a_run_record() -> None:
    sources = [p for b in BACKENDS for p in sorted((ROOT / b / "src").rglob("*.py"))]
    assert sources
    sources = [p for p in sources if str(p.relative_to(ROOT)) not in NOT_YET]
    writes = [w for p in sources for w in record_writes(p)]
    assert writes == [], "backends must leave record writes to core (qwex_core.observed)"


def test_the_check_finds_a_record_write(tmp_path: Path) -> None:
    """The check itself: a backend that ends a run itself is found."""
    probe = tmp_path / "runner.py"
    probe.write_text(
        "def probe(self, run):\n    self.store.record_end(run, 'lost', 'gone')\n"
        "def start(self, run):\n    self.store.save(run)\n"
        "def refresh(self, run):\n    self.store.save(run)\n"
    )
    assert record_writes(probe, tmp_path) == [
        "runner.py:2 self.store.record_end",
        "runner.py:6 self.store.save",
    ]
