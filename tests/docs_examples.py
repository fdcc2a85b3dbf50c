"""Every shell and Python example of the site (docs/*.md, README.md), taken out of the pages
as written, and what each one's marker says a test does with it.

A fenced block is an example when its language is `sh`, `bash`, `shell`, `console`,
`python` or `py`. The HTML comment on the line right before its fence (invisible on the
site) says how it is checked; docs/contributing.md documents the markers for page
authors:

- `<!-- example: run -->`: run by tests/core/test_docs_examples.py in a fresh project, in
  page order (one project per page, as a reader following it), with nothing but the CLI;
  it must exit 0. `run docker`: it needs the Docker daemon, and the page's examples run in
  tests/docker/test_docs_examples_docker.py instead (marked `docker`), `python:3.11` and
  `busybox` replaced by the offline test images. A `text` block marked `<!-- example: output -->` right after it is the
  standard output it must print (`...` matches any text); so are the lines after each
  `$ command` of a `console` block.
- `<!-- example: parse REASON -->`: every `qwex` command line in it is parsed by the
  installed CLI (unknown commands and options fail) but not run, for REASON.
- `<!-- example: TAG -->` or `<!-- quickstart: TAG -->`: run by a test of its own, which
  takes it with `quickstart.blocks("TAG", "page.md")` (checked: some test calls that); the
  way for an example that needs a component (the test is marked `docker`, `k8s`, `serve`
  and runs where CI has it).
- `<!-- example: tested-by PATH -->`: the test module PATH takes the block out of the page
  itself (checked: PATH exists and names the page).
- `<!-- example: skip REASON -->`: not run; REASON (three words at least) says why.

An example with no marker fails tests/core/test_docs_examples.py, as does a fenced block
with no language (is it a command or output?).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from click.core import ParameterSource

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from docs_reference import param_anchor

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "python", "py"})
KINDS = ("run", "parse", "skip", "tested-by", "output")
MARKER = re.compile(r"^<!--\s*(?:example|quickstart):\s*(?P<text>.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[^\s`{]*)")
REASON_WORDS = 3
COMPONENTS = ("", "docker")
"""What a `run` example may need: nothing, or the Docker daemon (`run docker`)."""
DOCKER_IMAGES = {"python:3.11": "qwex-test/python", "busybox": "qwex-test/busybox"}
"""What a `run docker` example's images become in the test: the offline test images
(`nox -s images`), the test machine pulls nothing."""
COMMANDLINE = ParameterSource.COMMANDLINE


def pages() -> list[Path]:
    """The pages whose examples are checked: the site's and the README."""
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


@dataclass(frozen=True)
class Block:
    """One fenced block of a page, with the marker comment right before its fence."""

    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    body: str
    marker: str | None  # the comment's text after `example:` (or `quickstart:`)

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"

    @property
    def is_example(self) -> bool:
        return self.language in EXAMPLE_LANGUAGES

    @property
    def kind(self) -> str:
        """run, parse, skip, tested-by, output, or tag (a test of its own); "" unmarked."""
        if self.marker is None:
            return ""
        word = self.marker.split()[0] if self.marker.split() else ""
        return word if word in KINDS else "tag"

    @property
    def argument(self) -> str:
        """What follows the kind: the reason, the path, the component (`run docker`)."""
        assert self.marker is not None
        return self.marker.partition(" ")[2].strip() if self.kind != "tag" else self.marker


def blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, in order (a fence in a list item included)."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = i + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = "".join(line[indent:] + "\n" for line in lines[i + 1 : end])
        before = MARKER.match(lines[i - 1].strip()) if i > 0 else None
        marker = before["text"] if before else None
        found.append(Block(page, i + 1, opening["lang"].lower(), body, marker))
        i = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks(page)]


def problems(found: list[Block], tests_dir: Path = ROOT / "tests") -> list[str]:
    """What is wrong with the markers of `found`: each a line naming the block."""
    sources = {p: p.read_text() for p in tests_dir.rglob("*.py")}
    out: list[str] = []
    for index, block in enumerate(found):
        if not block.language:
            out.append(f"{block.where}: a fence without a language (`sh`, `python`, `text`...)")
            continue
        if block.kind == "output":
            previous = found[index - 1] if index else None
            if previous is None or previous.page != block.page or previous.kind != "run":
                out.append(f"{block.where}: an output block must follow a `run` example")
            continue
        if not block.is_example:
            if block.marker is not None:
                out.append(f"{block.where}: a marker on a `{block.language}` block, no example")
            continue
        out += [f"{block.where}: {why}" for why in marker_problems(block, sources)]
    return out


def marker_problems(block: Block, sources: dict[Path, str]) -> list[str]:
    kind = block.kind
    if kind == "":
        return [
            "an example with no marker: run it (`<!-- example: run -->`) or say why not "
            "(`<!-- example: skip REASON -->`; docs/contributing.md)"
        ]
    if kind in ("skip", "parse") and len(block.argument.split()) < REASON_WORDS:
        return [f"`{kind}` needs a reason of {REASON_WORDS} words at least"]
    if kind == "parse" and not qwex_lines(block):
        return ["`parse` on a block with no `qwex` command line"]
    if kind == "run" and block.argument not in COMPONENTS:
        return [
            f"`run {block.argument}`: only `run` and `run docker` are known; an example that "
            "needs another component has a test of its own (`<!-- example: TAG -->`)"
        ]
    if kind == "tested-by":
        module = ROOT / block.argument
        if module not in sources or block.page.name not in sources[module]:
            return [f"{block.argument} is not a test module naming {block.page.name}"]
    if kind == "tag":
        call = re.compile(rf"""blocks\(\s*["']{re.escape(block.marker or "")}["']([^)]*)\)""")
        calls = [m[1] for text in sources.values() for m in call.finditer(text)]
        on_page = [c for c in calls if block.page.name in c or block.page.name == "quickstart.md"]
        if not on_page:
            return [f"no test calls blocks({block.marker!r}, {block.page.name!r})"]
    return []


# --- what the checks do with a block -----------------------------------------------------


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """A `console` block as (command, expected output lines) pairs; any other block as one
    command (its whole body) with no expected output."""
    if block.language != "console":
        return [(block.body, [])]
    pairs: list[tuple[str, list[str]]] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
    return pairs


def output_matches(expected: list[str], actual: str) -> bool:
    """`actual` is the `expected` lines, where `...` matches any text (whole lines too)."""
    pattern = "\n".join(
        ".*" if line.strip() == "..." else ".*".join(map(re.escape, line.rstrip().split("...")))
        for line in expected
    )
    text = "\n".join(line.rstrip() for line in actual.rstrip("\n").splitlines())
    return re.fullmatch(pattern, text, re.S) is not None


OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "(", ")", "$("}


def qwex_lines(block: Block) -> list[list[str]]:
    """Each `qwex ...` command of the block as its arguments (after `qwex`): comments,
    `$ ` prompts, leading `VAR=value` assignments and what follows a shell operator
    (a pipe, a redirection, `&&`) are left out."""
    text = "\n".join(c for c, _ in commands(block)) if block.language == "console" else block.body
    text = text.replace("\\\n", " ")
    found: list[list[str]] = []
    for line in text.splitlines():
        found += qwex_commands(line)
    return found


def qwex_commands(line: str) -> list[list[str]]:
    """Each `qwex ...` command of one shell line, as its arguments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote: not a command line
        return []
    found: list[list[str]] = []
    current: list[str] | None = None
    first = True  # the next word is where a command's name is
    for word in words:
        for inner in re.findall(r"\$\((.*?)\)", word):  # "$(qwex serve token add alice)"
            found += qwex_commands(inner)
        if word in OPERATORS or set(word) <= set("|&;<>()"):
            if current and word[0] in "<>" and current[-1].isdigit():
                current.pop()  # `2>&1`: the descriptor is the redirection's
            if current is not None:
                found.append(current)
            current, first = None, True
        elif current is not None:
            current.append(word)
        elif first and re.fullmatch(r"[A-Za-z_]\w*=.*", word):
            continue  # `QWEX_MINE_ENDPOINT=tcp://other:7000 qwex run ...`
        elif first:
            current, first = ([] if word == "qwex" else None), False
    if current is not None:
        found.append(current)
    return found


def parse_error(group: click.Group, args: list[str]) -> str | None:
    """Why `qwex ARGS` is not a command line of `group` (an unknown command or option, a
    missing argument, a bad value), or None: click parses it as `qwex` would, nothing runs."""
    return parse(group, args)[0]


def parse(
    group: click.Group, args: list[str], resilient: bool = False
) -> tuple[str | None, set[str]]:
    """`qwex ARGS` parsed by `group` as `qwex` would (nothing runs, `--help` prints nothing):
    why it is not a command line of it (an unknown command or option, a missing argument,
    a bad value) or None, and the reference anchors (docs_reference) of the commands and
    the options and arguments it gives (`qwex-logs`, `qwex-logs--tail`). `resilient`: a
    fragment (`qwex logs -f` in a sentence): a missing argument or subcommand is no error."""
    used: set[str] = set()
    path = ["qwex"]
    command: click.Command = group
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            ctx = _context(group, "qwex", list(args), None, resilient)
            while True:
                anchor = "-".join(path)
                used.add(anchor)
                for param in command.params:
                    if param.name and ctx.get_parameter_source(param.name) is COMMANDLINE:
                        used.add(param_anchor(param, anchor))
                if not isinstance(command, click.Group):
                    return None, used
                rest = [*ctx._protected_args, *ctx.args]
                if not rest:
                    return None, used
                name, sub, rest = command.resolve_command(ctx, rest)
                assert sub is not None and name is not None  # else click raised
                ctx = _context(sub, name, rest, ctx, resilient)
                command, path = sub, [*path, name]
    except click.exceptions.Exit:  # --help, --version
        return None, used
    except (click.BadParameter, click.BadOptionUsage) as exc:
        if resilient:  # `--role ROLE`, `-e` in a sentence: placeholders, a fragment
            return None, used
        bad = getattr(exc, "param", None)
        if isinstance(bad and bad.type, click.Path) and "does not exist" in str(exc):
            return None, used  # a file of the reader's project (`--workdir src`): it parses
        return exc.format_message(), used
    except click.ClickException as exc:
        return exc.format_message(), used


def _context(
    command: click.Command,
    name: str,
    args: list[str],
    parent: click.Context | None,
    fragment: bool,
) -> click.Context:
    """`command`'s context for `args`; for a `fragment` (`qwex logs -f` in a sentence,
    `qwex agent`), a missing argument or subcommand is no error: parsed again leniently."""
    try:
        return command.make_context(name, list(args), parent=parent)
    except (click.MissingParameter, click.exceptions.NoArgsIsHelpError):
        if not fragment:
            raise
        return command.make_context(name, list(args), parent=parent, resilient_parsing=True)


def run_env(tmp_path: Path) -> dict[str, str]:
    """This environment with the `qwex` of this interpreter first on PATH, no `QWEX_*`
    variable, and the user's configuration and data (a server's database) in `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


def needs(found: list[Block]) -> str:
    """What a page's `run` examples need: "docker" when one of them does, else ""."""
    return "docker" if any(b.kind == "run" and b.argument == "docker" for b in found) else ""


def run_page(
    found: list[Block], project: Path, env: dict[str, str], images: dict[str, str] | None = None
) -> list[str]:
    """Run `found`'s `run` examples in order in `project` (the page's other blocks are left
    alone), each image named in `images` replaced by its value; what went wrong, each
    naming its block: an exit code other than 0, or standard output other than the
    `output` block after it (or a `console` block's lines)."""
    failures: list[str] = []
    for index, block in enumerate(found):
        if block.kind != "run":
            continue
        following = found[index + 1] if index + 1 < len(found) else None
        shown = following.body.splitlines() if following and following.kind == "output" else None
        printed = ""
        for command, expected in commands(block):
            for image, replacement in (images or {}).items():
                command = re.sub(
                    rf"(?<![\w/.:-]){re.escape(image)}(?![\w/.:-])", replacement, command
                )
            done = _run_one(block.language, command, project, env)
            printed += done.stdout
            if done.returncode != 0:
                failures.append(
                    f"{block.where}: exit code {done.returncode}\n{done.stdout}{done.stderr}"
                )
                break
            if expected and not output_matches(expected, done.stdout):
                failures.append(f"{block.where}: `{command}` printed\n{done.stdout}")
        if shown is not None and not output_matches(shown, printed):
            failures.append(
                f"{block.where}: printed what its output block does not show\n{printed}"
            )
    return failures


def _run_one(
    language: str, body: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    if language in ("python", "py"):
        argv = [sys.executable, "-c", body]
    else:
        argv = ["bash", "-eu", "-o", "pipefail", "-c", body]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
