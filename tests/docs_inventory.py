"""What the code has that the docs must describe, and what the hand-written pages describe.

The code's side is read from the generated references (tools/docs_reference.py, written
from the click commands, the pydantic models, the hookspecs and openapi.json while the
site builds), so it is the same list the site shows: every command, option and argument
(`qwex-run--gpu`), every configuration key (`k8s.namespace`), every hook, every API
operation (`cancel_job`).

A hand-written page (docs/*.md, README.md) describes an entry when it links to it
(`reference/cli.md#qwex-run--gpu`), and also:
- a CLI command or option, when a `qwex` command line of a shell example or of an inline
  code span gives it (`qwex logs --tail 50`), parsed by the CLI itself;
- a configuration key, when a TOML example sets it (a commented `# key = value` line of
  one too; under `[tool.qwex]`, a section's table or a profile) or the page names its
  variable (`QWEX_K8S_NAMESPACE`).

tests/core/test_docs_drift.py fails both ways: an entry no page describes (added
undocumented) and a description of an entry the code no longer has (removed without the
docs).
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from docs_examples import ROOT, all_blocks, pages, parse, qwex_commands, qwex_lines

sys.path.insert(0, str(ROOT / "tools"))
import docs_reference as docs_reference  # re-exported: the tests change what it reads

REFERENCES = ("cli", "configuration", "hooks", "api")
SPAN = re.compile(r'<span id="([^"]+)"></span>')
HEADING = re.compile(r"^#+ .*\{#([^}]+)\}$", re.M)
LINK = re.compile(r"reference/(cli|configuration|hooks|api)\.md#([^)\s\"'>`,]+)")
SHELL = ("sh", "bash", "shell", "console")
TOML_KEY_COMMENT = re.compile(r"^#\s*([A-Za-z_][\w-]*\s*=)")


def entries(group: click.Group) -> dict[str, set[str]]:
    """Every entry of each generated reference page, by its anchor (the CLI's of `group`)."""
    text = {**docs_reference.pages(), "cli": docs_reference.cli_page(group)}
    return {
        "cli": set(SPAN.findall(text["cli"])) | set(HEADING.findall(text["cli"])),
        "configuration": set(SPAN.findall(text["configuration"])),
        "hooks": set(HEADING.findall(text["hooks"])),
        "api": set(SPAN.findall(text["api"])),  # each operation's operationId
    }


def variables() -> dict[str, str]:
    """Each configuration key's environment variable (`QWEX_K8S_NAMESPACE`: `k8s.namespace`),
    as the reference shows it."""
    rows = re.findall(
        r'<span id="([^"]+)"></span>(?:(?:[^|\\]|\\.)*\|){3} `(QWEX_\w+)`',
        docs_reference.pages()["configuration"],
    )
    return {variable: key for key, variable in rows}


def described(group: click.Group, found: list[Path] | None = None) -> dict[str, set[str]]:
    """The entries the hand-written pages describe (links, command lines, TOML, variables),
    whether the code has them or not."""
    hand = found if found is not None else pages()
    out: dict[str, set[str]] = {name: set() for name in REFERENCES}
    names = variables()
    for page in hand:
        text = page.read_text()
        for reference, anchor in LINK.findall(text):
            out[reference].add(anchor)
        for args in spans(text):
            out["cli"] |= parse(group, args, resilient=True)[1]
        for variable in re.findall(r"\bQWEX_[A-Z0-9_]+\b", text):
            if variable in names:
                out["configuration"].add(names[variable])
    blocks = [b for b in all_blocks() if b.page in hand]
    for block in blocks:
        if block.language in SHELL:
            for args in qwex_lines(block):
                out["cli"] |= parse(group, args)[1]
        elif block.language == "toml":
            out["configuration"] |= {key for key, _ in toml_keys(block.body)}
    return out


def spans(text: str) -> list[list[str]]:
    """The `qwex` command lines of a page's inline code spans (`qwex logs -f RUN`, `qwex rm
    $(qwex list -q)`), a `...` standing for more left out."""
    found: list[list[str]] = []
    for span in re.findall(r"`(qwex [^`\n]+)`", text):
        found += [[a for a in args if a != "..."] for args in qwex_commands(span)]
    return found


def toml_keys(body: str) -> Iterator[tuple[str, bool]]:
    """The configuration keys a TOML example sets, as the reference names them: `[tool.qwex]`
    and a profile's table stripped (`[tool.qwex.profiles.gpu.k8s] queue` is `k8s.queue`),
    a commented `# key = value` line counted as set. Not a configuration file (a plugin's
    pyproject.toml), nothing. Each key with whether it is a table."""
    lines = [TOML_KEY_COMMENT.sub(r"\1", line) for line in body.splitlines()]
    try:
        data = tomllib.loads("\n".join(lines))
    except tomllib.TOMLDecodeError:
        data = tomllib.loads(body)
    if "project" in data or "build-system" in data:
        return
    data = data.get("tool", {}).get("qwex", data)
    for profile in data.get("profiles", {}).values():
        if isinstance(profile, dict):
            yield from _flatten(profile, [])
    yield from _flatten(data, [])


def _flatten(table: dict[str, Any], path: list[str]) -> Iterator[tuple[str, bool]]:
    for key, value in table.items():
        dotted = [*path, key]
        yield ".".join(dotted), isinstance(value, dict)
        if isinstance(value, dict) and key not in ("env", "labels", "profiles"):
            yield from _flatten(value, dotted)


def undocumented(group: click.Group) -> dict[str, list[str]]:
    """Entries of the code that no hand-written page describes, by reference."""
    have, told = entries(group), described(group)
    return {name: sorted(have[name] - told[name]) for name in REFERENCES if have[name] - told[name]}


def stale(group: click.Group) -> dict[str, list[str]]:
    """Links and TOML keys of the hand-written pages naming an entry the code does not have.
    (A command line naming a gone option fails test_docs_examples: it does not parse.) A
    top-level TOML table the models do not know at all (the plugin guide's sketched
    section) is left alone; any other key must be known."""
    have, told = entries(group), described(group)
    sections = set(HEADING.findall(docs_reference.pages()["configuration"]))
    out: dict[str, set[str]] = {name: told[name] - have[name] for name in REFERENCES}
    out["configuration"] = {
        anchor for anchor in told["configuration"] - have["configuration"] if anchor in linked()
    }
    for page in pages():
        for args in spans(page.read_text()):
            if why := parse(group, args, resilient=True)[0]:
                out["cli"].add(f"`qwex {shlex.join(args)}` ({page.relative_to(ROOT)}): {why}")
    sketched: set[str] = set()  # QWEX_MINE_: the variables of a sketched section
    for block in all_blocks():
        if block.language in SHELL:
            for args in qwex_lines(block):
                if why := parse(group, args)[0]:
                    out["cli"].add(f"qwex {shlex.join(args)} ({block.where}): {why}")
        if block.language != "toml":
            continue
        for key, table in toml_keys(block.body):
            top = key.partition(".")[0]
            if key in have["configuration"] or key in sections:
                continue
            if "." not in key and table:
                sketched.add(f"QWEX_{key.upper()}_")
                continue  # a section of a plugin the page sketches (`[mine]`)
            if "." not in key or top in have["configuration"] or top in sections:
                out["configuration"].add(f"{key} ({block.where})")
    known = set(variables()) | read_variables()
    for page in pages():
        for variable in set(re.findall(r"\bQWEX_[A-Z0-9_]*[A-Z0-9]\b", page.read_text())):
            if variable not in known and not variable.startswith(tuple(sketched)):
                out["configuration"].add(f"{variable} ({page.relative_to(ROOT)})")
    return {name: sorted(gone) for name, gone in out.items() if gone}


def read_variables() -> set[str]:
    """The `QWEX_*` names code spells out, the variables that are no configuration key's:
    the distributions' (`QWEX_DEBUG`, `QWEX_PLUGINS`), the tests' and benchmarks' (which
    pages tell developers about), the docs' own Python examples' (`QWEX_FAR_ROOT`)."""
    sources = [*ROOT.glob("qwex-*/src/**/*.py"), *ROOT.glob("tests/**/*.py")]
    sources += [*ROOT.glob("benchmarks/**/*.py"), ROOT / "noxfile.py"]
    texts = [path.read_text() for path in sources]
    texts += [b.body for b in all_blocks() if b.language in ("python", "py")]
    return {name for text in texts for name in re.findall(r"\bQWEX_[A-Z0-9_]*[A-Z0-9]\b", text)}


def linked() -> set[str]:
    """The configuration anchors the hand-written pages link to."""
    return {
        a for page in pages() for r, a in LINK.findall(page.read_text()) if r == "configuration"
    }
