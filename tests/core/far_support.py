"""The far-away backend of docs/plugins.md, written out of the guide into a package at test
time, for the tests that run it (`qwex_far`)."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def far_files() -> dict[str, str]:
    """The guide's code blocks whose first line names a file of `qwex_far`."""
    files = {}
    for block in re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.M | re.S):
        first, _, body = block.partition("\n")
        name = first.removeprefix("# ").strip()
        if re.fullmatch(r"qwex_far/\w+\.py", name):
            files[name] = body
    return files


@pytest.fixture(scope="module")
def far_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    site = tmp_path_factory.mktemp("site")
    (site / "qwex_far").mkdir()
    (site / "qwex_far" / "__init__.py").write_text("")
    for name, body in far_files().items():
        (site / name).write_text(body)
    sys.path.insert(0, str(site))
    yield site
    sys.path.remove(str(site))
    for module in [m for m in sys.modules if m.startswith("qwex_far")]:
        del sys.modules[module]


def far_root() -> Path:
    """The far side's directory: qwex_far is written at run time, so imported by name."""
    root: Path = importlib.import_module("qwex_far.runner").FAR
    return root


@pytest.fixture(autouse=True)
def far_backend(
    far_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setattr(importlib.import_module("qwex_far.runner"), "FAR", tmp_path / "far")
    yield
