"""Write the generated references into the docs: the Run and JobSpec fields a runner may use.

`python tools/gen_reference.py` rewrites the blocks between `<!-- generated: NAME -->` and
`<!-- end generated -->` in docs/plugins.md; `--check` exits 1 when they are stale
(tests/core/test_docs_reference.py runs it). Descriptions come from each field's
`description` or the docstring under it in qwex_core/models.py: a field without one fails.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S
)


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field of `model` and of its bases, from their source."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        tree = ast.parse(inspect.getsource(cls))
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[node.target.id] = " ".join(after.value.value.split())
    return found


def type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"\b(?:typing|datetime|qwex_core\.models)\.", "", text)
    return text.replace("NoneType", "None").replace("|", "\\|")  # a cell of a Markdown table


def default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return f"`{value!r}`" if not isinstance(value, BaseModel) else "defaults"
    if field.default is PydanticUndefined:
        return ""
    value = field.default
    return f"`{getattr(value, 'value', value)!r}`" if value is not None else "`None`"


def fields_table(model: type[BaseModel], prefix: str = "") -> list[str]:
    """One row per field, nested models' fields after their parent as `parent.child`."""
    docs = attribute_docstrings(model)
    rows: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude and name != "secret_env":
            continue
        text = field.description or docs.get(name)
        if not text:
            raise SystemExit(f"{model.__name__}.{name} has no description or docstring")
        rows.append(
            f"| `{prefix}{name}` | `{type_name(field.annotation)}` | {default_text(field)} | {text} |"
        )
        inner, item = field.annotation, ""
        if typing.get_origin(inner) is list:
            inner, item = typing.get_args(inner)[0], "[]"
        if isinstance(inner, type) and issubclass(inner, BaseModel) and inner.__name__ != "JobSpec":
            rows.extend(fields_table(inner, f"{prefix}{name}{item}."))
    return rows


def render(name: str) -> str:
    from qwex_core.models import JobSpec, Run

    models: dict[str, type[BaseModel]] = {"run-fields": Run, "jobspec-fields": JobSpec}
    model = models[name]
    head = ["| field | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(head + fields_table(model)) + "\n"


def rewrite(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def main() -> int:
    text = DOC.read_text()
    new = rewrite(text)
    if "--check" in sys.argv[1:]:
        if new != text:
            print(
                f"{DOC.relative_to(ROOT)}: generated references are stale; run python tools/gen_reference.py"
            )
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
