"""MkDocs hooks: the references generated from the installed code, and the pictures drawn
from their text sources, while the site is built (nothing generated is committed).

The references (docs_reference.py) become pages under reference/; each option, key and
hook gets an anchor, so a hand-written page linking to one that is gone fails
`mkdocs build --strict` (mkdocs.yml validates anchors). Every `docs/diagrams/NAME.dot`
becomes `diagrams/NAME.svg`, drawn by Graphviz's `dot` (inline SVG: no script, no font
or file fetched when the page is viewed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import docs_reference

DIAGRAMS = "diagrams"


def on_files(files: Files, config: Any) -> Files:
    for name, text in docs_reference.pages().items():
        files.append(File.generated(config, f"reference/{name}.md", content=text))
    for source in [f for f in files if f.src_uri.startswith(f"{DIAGRAMS}/")]:
        if source.src_uri.endswith(".dot"):
            files.remove(source)
            svg = source.src_uri.removesuffix(".dot") + ".svg"
            files.append(File.generated(config, svg, content=draw(Path(source.abs_src_path or ""))))
    return files


def draw(source: Path) -> bytes:
    """`source` drawn as SVG by Graphviz; a status of RunStatus missing from the state
    machine's source fails the build (the picture would lie)."""
    text = source.read_text()
    if source.stem == "run-states":
        from qwex_core.models import RunStatus

        missing = [s.value for s in RunStatus if s.value not in text]
        if missing:
            raise PluginError(f"{source.name} does not draw the statuses {missing}")
    dot = shutil.which("dot")
    if dot is None:
        raise PluginError("Graphviz's `dot` is needed to draw the pictures (apt install graphviz)")
    done = subprocess.run([dot, "-Tsvg"], input=text.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise PluginError(f"dot could not draw {source.name}: {done.stderr.decode().strip()}")
    return done.stdout
