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

import functools
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class Survey:
    """The code's entries and what the pages say, from one pass over both."""

    have: dict[str, set[str]]  # every entry of each reference
    told: dict[str, set[str]] = field(default_factory=lambda: {n: set() for n in REFERENCES})
    wrong: dict[str, set[str]] = field(default_factory=lambda: {n: set() for n in REFERENCES})
    """What a page says that no code has, beyond anchors: command lines that do not parse,
    unknown TOML keys and variables, each naming where."""


def entries(group: click.Group) -> dict[str, set[str]]:
    """Every entry of each generated reference page, by its anchor (the CLI's of `group`)."""
    return _entries({**docs_reference.pages(), "cli": docs_reference.cli_page(group)})


def _entries(text: dict[str, str]) -> dict[str, set[str]]:
    return {
        "cli": set(SPAN.findall(text["cli"])) | set(HEADING.findall(text["cli"])),
        "configuration": set(SPAN.findall(text["configuration"])),
        "hooks": set(HEADING.findall(text["hooks"])),
        "api": set(SPAN.findall(text["api"])),  # each operation's operationId
    }


def variables(configuration: str) -> dict[str, str]:
    """Each configuration key's environment variable (`QWEX_K8S_NAMESPACE`: `k8s.namespace`),
    as the reference page `configuration` shows it."""
    rows = re.findall(
        r'<span id="([^"]+)"></span>(?:(?:[^|\\]|\\.)*\|){3} `(QWEX_\w+)`', configuration
    )
    return {variable: key for key, variable in rows}


def survey(group: click.Group) -> Survey:
    """The code's entries (the CLI's of `group`) and the hand-written pages' descriptions:
    links, command lines (shell examples, inline spans), TOML keys, variables."""
    text = {**docs_reference.pages(), "cli": docs_reference.cli_page(group)}
    found = Survey(_entries(text))
    names = variables(text["configuration"])
    sections = set(HEADING.findall(text["configuration"]))
    known = set(names) | read_variables()
    sketches = sketched()
    prefixes = tuple(f"QWEX_{name.upper()}_" for name in sketches)
    for page in pages():
        content, where = page.read_text(), page.relative_to(ROOT)
        for reference, anchor in LINK.findall(content):
            found.told[reference].add(anchor)
            if anchor not in found.have[reference] and anchor not in sections:
                found.wrong[reference].add(anchor)
        for args in spans(content):
            why, used = parse(group, args, resilient=True)
            found.told["cli"] |= used
            if why:
                found.wrong["cli"].add(f"`qwex {shlex.join(args)}` ({where}): {why}")
        for variable in set(re.findall(r"\bQWEX_[A-Z0-9_]*[A-Z0-9]\b", content)):
            if variable in names:
                found.told["configuration"].add(names[variable])
            elif variable not in known and not variable.startswith(prefixes):
                found.wrong["configuration"].add(f"{variable} ({where})")
    for block in all_blocks():
        if block.language in SHELL:
            for args in qwex_lines(block):
                why, used = parse(group, args)
                found.told["cli"] |= used
                if why:
                    found.wrong["cli"].add(f"qwex {shlex.join(args)} ({block.where}): {why}")
        elif block.language == "toml":
            for key, _ in toml_keys(block.body):
                found.told["configuration"].add(key)
                top = key.partition(".")[0]
                have = key in found.have["configuration"] or key in sections
                if not have and top not in sketches:  # not the guide's sketched `[mine]`
                    found.wrong["configuration"].add(f"{key} ({block.where})")
    return found


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
    found = survey(group)
    gaps = {name: found.have[name] - found.told[name] for name in REFERENCES}
    return {name: sorted(gap) for name, gap in gaps.items() if gap}


def stale(group: click.Group) -> dict[str, list[str]]:
    """What the hand-written pages describe that the code does not have: links, `qwex`
    command lines that do not parse (examples and inline spans), TOML keys, `QWEX_*`
    variables (a configuration key's, or one code reads). The sections a page's own
    Python example registers (the plugin guide's `mine`) are left alone."""
    return {name: sorted(gone) for name, gone in survey(group).wrong.items() if gone}


def sketched() -> set[str]:
    """The sections the pages' own Python examples register (the plugin guide's `mine`):
    their TOML and variables are the example's, not the installed code's."""
    python = [b.body for b in all_blocks() if b.language in ("python", "py")]
    return {name for body in python for name in re.findall(r"register\(\s*[\"'](\w+)[\"']", body)}


@functools.cache
def read_variables() -> set[str]:
    """The `QWEX_*` names code spells out, the variables that are no configuration key's:
    the distributions' (`QWEX_DEBUG`, `QWEX_PLUGINS`), the tests' and benchmarks' (which
    pages tell developers about), the docs' own Python examples' (`QWEX_FAR_ROOT`)."""
    sources = [*ROOT.glob("qwex-*/src/**/*.py"), *ROOT.glob("tests/**/*.py")]
    sources += [*ROOT.glob("benchmarks/**/*.py"), ROOT / "noxfile.py"]
    texts = [path.read_text() for path in sources]
    texts += [b.body for b in all_blocks() if b.language in ("python", "py")]
    quoted = r"[\"']\$?\{?(QWEX_[A-Z0-9_]*[A-Z0-9])\}?[=\"']"  # not in a sentence of a docstring
    return {name for text in texts for name in re.findall(quoted, text)}
