"""The site's reference pages, written from the installed code: every CLI command and
option (backends' commands included), every configuration key, every hookspec, the
server's API. Each entry has a stable anchor (`#qwex-run--gpu`, `#k8s.namespace`,
`#qwex_prepare_job`, `#get-api-v1-runs`) that hand-written pages link to.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import click
from gen_reference import attribute_docstrings, default_text, type_name
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "qwex-remote" / "openapi.json"


def pages() -> dict[str, str]:
    return {
        "cli": cli_page(),
        "configuration": config_page(),
        "hooks": hooks_page(),
        "api": api_page(),
    }


def cell(text: str) -> str:
    """`text` fit for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")


# --- the CLI ---------------------------------------------------------------------------


def cli_page(group: click.Group | None = None) -> str:
    """The page of `group` (default: the installed `qwex`; the drift tests give one they
    changed)."""
    from qwex_core.cli.app import make_cli
    from qwex_core.cli.context import State
    from qwex_core.plugin.manager import PluginHost

    host = PluginHost()
    group = group or make_cli(host)
    ctx = click.Context(group, info_name="qwex", obj=State(host=host))
    out = [
        "# CLI reference",
        "",
        "Every `qwex` command and option, written from the click commands of the installed",
        "distributions while the site is built (the backends' commands included).",
        "",
    ]
    out += command_section(group, ctx, ["qwex"])
    return "\n".join(out) + "\n"


def command_section(command: click.Command, ctx: click.Context, path: list[str]) -> list[str]:
    name = " ".join(path)
    anchor = "-".join(path)
    level = "#" * min(len(path) + 1, 4)
    out = [f"{level} `{name}` {{#{anchor}}}", ""]
    usage = " ".join(command.collect_usage_pieces(ctx))
    out += ["```text", f"{name} {usage}".rstrip(), "```", ""]
    if command.help:
        out += ["```text", inspect.cleandoc(command.help).replace("\b\n", ""), "```", ""]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out += ["| option | type | default | meaning |", "|---|---|---|---|"]
        for param in params:
            out.append(param_row(param, anchor))
        out.append("")
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            child = command.get_command(ctx, sub)
            if child is None or child.hidden:
                continue
            sub_ctx = click.Context(child, info_name=sub, parent=ctx, obj=ctx.obj)
            out += command_section(child, sub_ctx, [*path, sub])
    return out


def param_anchor(param: click.Parameter, command_anchor: str) -> str:
    """The anchor of `param`'s row: `qwex-run--gpu` (its longest name), `qwex-status--runs`."""
    if isinstance(param, click.Option):
        return f"{command_anchor}--{max(param.opts, key=len).lstrip('-')}"
    return f"{command_anchor}--{param.name or ''}"


def param_row(param: click.Parameter, anchor: str) -> str:
    if isinstance(param, click.Option):
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        meaning = param.help or ""
        if param.envvar:
            meaning += f" (environment: `{param.envvar}`)"
        shown = "" if param.is_flag and param.default is not True else repr_default(param.default)
    else:
        names = f"`{(param.human_readable_name or '').upper()}`"
        meaning = "argument" + (" (required)" if param.required else "")
        shown = ""
    kind = "flag" if isinstance(param, click.Option) and param.is_flag else param.type.name
    row_id = param_anchor(param, anchor)
    return f'| <span id="{row_id}"></span>{names} | {kind} | {shown} | {cell(meaning)} |'


def repr_default(value: Any) -> str:
    """The default worth showing: none for no default (click's UNSET sentinel), an empty
    tuple (a repeatable option) or one computed when the command runs."""
    if value is None or value == () or callable(value) or type(value).__name__ == "Sentinel":
        return ""
    return f"`{value!r}`"


# --- configuration ---------------------------------------------------------------------


def config_page() -> str:
    from qwex_core.config import CoreSettings
    from qwex_core.plugin.manager import PluginHost

    out = [
        "# Configuration reference",
        "",
        "Every key of `[tool.qwex]` (in `pyproject.toml`; the same keys at the top of",
        "`qwex.toml` and `~/.config/qwex/config.toml`), with its type, default and",
        "environment variable, written from the pydantic models while the site is built:",
        "core's `CoreSettings` and the section model each installed backend registers",
        "(`[tool.qwex.SECTION]`). A key one level deeper than a variable reaches is set by",
        "its table's variable holding JSON.",
        "",
        "## Core keys {#core}",
        "",
    ]
    out += config_table(CoreSettings, [])
    sections = PluginHost().config_sections
    for section in sections:
        out += ["", f"## `[tool.qwex.{section}]` {{#{section}}}", ""]
        out += config_table(sections[section], [section])
    return "\n".join(out) + "\n"


def config_table(model: type[BaseModel], path: list[str]) -> list[str]:
    out = ["| key | type | default | environment | meaning |", "|---|---|---|---|---|"]
    out += config_rows(model, path, len(path))
    return out


def config_rows(model: type[BaseModel], path: list[str], top: int) -> list[str]:
    docs = attribute_docstrings(model)
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = [*path, name]
        dotted = ".".join(key)
        depth = len(key) - top
        # Core: QWEX_KEY, QWEX_TABLE_KEY; a section: QWEX_SECTION_KEY (config._env_layer).
        env = f"`QWEX_{'_'.join(key).upper()}`" if len(key) <= 2 and depth >= 1 else ""
        text = cell(field.description or docs.get(name) or "")
        kind = type_name(field.annotation)
        rows.append(
            f'| <span id="{dotted}"></span>`{dotted}` | `{kind}` | {default_text(field)} '
            f"| {env} | {text} |"
        )
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            rows.extend(config_rows(inner, key, top))
    return rows


# --- hooks -----------------------------------------------------------------------------


def hooks_page() -> str:
    from qwex_core.plugin import hookspecs

    out = [
        "# Hook reference",
        "",
        "Every hook a plugin may implement (`qwex_core.plugin.hookspecs`), with its",
        "signature and docstring, written from the code while the site is built. How to",
        "write a plugin: [the plugin author's guide](../plugins.md).",
        "",
    ]
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "qwex_spec"):  # pluggy's HookspecMarker("qwex") sets it
            continue
        signature = str(inspect.signature(function)).replace("'", "")  # postponed annotations
        out += [f"## `{name}` {{#{name}}}", "", "```python", f"def {name}{signature}", "```", ""]
        out += [inspect.getdoc(function) or "", ""]
    return "\n".join(out) + "\n"


# --- the server's API ------------------------------------------------------------------


def api_page() -> str:
    spec = json.loads(OPENAPI.read_text())
    out = [
        "# Server API reference",
        "",
        f"`{spec['info']['title']}` {spec['info'].get('version', '')}, from the committed",
        "`qwex-remote/openapi.json` (`nox -s gen_check` fails when it differs from what the",
        "server serves).",
        "",
    ]
    for route, methods in spec["paths"].items():
        for method, operation in methods.items():
            words = "".join(c if c.isalnum() else " " for c in f"{method} {route}".lower())
            anchor = "-".join(words.split())  # GET /api/v1/jobs/{job_id}: get-api-v1-jobs-job-id
            out += [f"## `{method.upper()} {route}` {{#{anchor}}}", ""]
            if operation.get("operationId"):  # the name docs/server.md's table links to
                out += [f'<span id="{operation["operationId"]}"></span>', ""]
            summary = operation.get("summary") or operation.get("operationId", "")
            out += [cell(summary), ""]
            if operation.get("description"):
                out += [operation["description"], ""]
            params = operation.get("parameters", [])
            if params:
                out += ["| parameter | in | required | meaning |", "|---|---|---|---|"]
                for p in params:
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} "
                        f"| {cell(p.get('description', ''))} |"
                    )
                out.append("")
            codes = ", ".join(f"`{code}`" for code in operation.get("responses", {}))
            out += [f"Responses: {codes}", ""]
    return "\n".join(out) + "\n"
