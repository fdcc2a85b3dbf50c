"""Every shell and Python example of the site and the README is run by a test, or marked
with why not (tests/docs_examples.py has the markers; docs/contributing.md documents them for
page authors). A new example with neither fails here, as does a `run` example that fails
or prints other than its page shows, and a `qwex` command line the CLI does not parse."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from docs_examples import (
    ROOT,
    all_blocks,
    blocks,
    needs,
    pages,
    parse_error,
    problems,
    qwex_lines,
    run_env,
    run_page,
)

SHELL = ("sh", "bash", "shell", "console")


def test_every_example_is_run_or_marked_with_a_reason() -> None:
    found = all_blocks()
    assert sum(b.is_example for b in found) >= 35  # the harness finds the site's examples
    assert problems(found) == []


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        ("```sh\nqwex list\n```\n", "an example with no marker"),
        ("```python\nprint(1)\n```\n", "an example with no marker"),
        ("```\nqwex list\n```\n", "a fence without a language"),
        ("<!-- example: skip later -->\n```sh\nqwex list\n```\n", "needs a reason"),
        ("<!-- example: parse not run here -->\n```sh\nls\n```\n", "no `qwex` command line"),
        ("<!-- example: nobody-runs-this -->\n```sh\nqwex list\n```\n", "no test calls blocks"),
        ("<!-- example: tested-by tests/none.py -->\n```sh\nqwex list\n```\n", "not a test module"),
        ("<!-- example: run k8s -->\n```sh\nqwex list\n```\n", "only `run` and `run docker`"),
        ("<!-- example: output -->\n```text\nhi\n```\n", "must follow a `run` example"),
        ("<!-- example: run -->\n```toml\nx = 1\n```\n", "no example"),
        ("- a list item:\n\n    ```bash\n    qwex list\n    ```\n", "an example with no marker"),
    ],
)
def test_a_block_neither_run_nor_marked_fails_the_check(
    tmp_path: Path, page: str, complaint: str
) -> None:
    """Each way an example escapes the tests is caught, naming the page and line."""
    written = tmp_path / "new.md"
    written.write_text(f"# A new page\n\n{page}")
    [problem] = problems(blocks(written), tests_dir=ROOT / "tests")
    fence = 1 + next(n for n, line in enumerate(written.read_text().splitlines()) if "```" in line)
    assert problem.startswith(f"{written}:{fence}: ")
    assert complaint in problem


def test_a_marked_example_passes_the_check(tmp_path: Path) -> None:
    written = tmp_path / "quickstart.md"
    written.write_text(
        "<!-- example: skip installs the distribution first -->\n```sh\npip install x\n```\n"
        "<!-- example: local -->\n```sh\nqwex list\n```\n"  # tests/core/test_quickstart.py
        "<!-- example: run -->\n```python\nprint(1)\n```\n"
        "<!-- example: output -->\n```text\n1\n```\n"
    )
    assert problems(blocks(written), tests_dir=ROOT / "tests") == []


@pytest.fixture
def cli() -> click.Group:
    from qwex_core.cli.app import make_cli
    from qwex_core.plugin.manager import PluginHost

    return make_cli(PluginHost())


def test_every_documented_qwex_command_line_parses(cli: click.Group) -> None:
    """Every `qwex ...` line of every shell example, run or not, is one the installed CLI
    accepts: the commands, options and values it shows exist."""
    lines = [
        (block.where, args)
        for block in all_blocks()
        if block.language in SHELL
        for args in qwex_lines(block)
    ]
    assert len(lines) >= 70
    wrong = [
        f"{where}: qwex {' '.join(a)}: {why}" for where, a in lines if (why := parse_error(cli, a))
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("line", "complaint"),
    [
        ("qwex run --no-such-flag -- true", "No such option"),
        ("qwex serve token lst", "No such command"),
        ("qwex logs --tail many RUN", "is not a valid integer"),
        ("QWEX_X=1 qwex lisst -q | head  # a comment", "No such command"),
        ('export T="$(qwex serve token ad alice)"', "No such command"),
    ],
)
def test_a_command_line_the_cli_refuses_is_named(
    tmp_path: Path, cli: click.Group, line: str, complaint: str
) -> None:
    written = tmp_path / "page.md"
    written.write_text(f"```sh\n{line}\n```\n")
    [block] = blocks(written)
    [args] = qwex_lines(block)
    assert complaint in (parse_error(cli, args) or "")


def test_removing_a_documented_option_breaks_its_command_lines(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/server.md shows `qwex serve token list --json`: without the option, it fails."""
    ctx = click.Context(cli)
    serve = cli.get_command(ctx, "serve")
    assert isinstance(serve, click.Group)
    token = serve.get_command(ctx, "token")
    assert isinstance(token, click.Group)
    listing = token.get_command(ctx, "list")
    assert listing is not None
    kept = [p for p in listing.params if "--json" not in getattr(p, "opts", [])]
    monkeypatch.setattr(listing, "params", kept)
    server = next(b for b in all_blocks() if b.where.startswith("docs/server.md"))
    assert ["serve", "token", "list", "--json"] in qwex_lines(server)
    assert "No such option '--json'" in (
        parse_error(cli, ["serve", "token", "list", "--json"]) or ""
    )


RUN_PAGES = [p for p in pages() if any(b.kind == "run" for b in blocks(p))]
LOCAL_PAGES = [p for p in RUN_PAGES if not needs(blocks(p))]
"""The pages whose examples need no component (tests/docker runs the others)."""


@pytest.mark.parametrize("page", LOCAL_PAGES, ids=[str(p.relative_to(ROOT)) for p in LOCAL_PAGES])
def test_the_run_examples_run_as_written(page: Path, project: Path, tmp_path: Path) -> None:
    """A page's `run` examples, in order, in one fresh project: each exits 0 and prints what
    the page shows after it."""
    assert run_page(blocks(page), project, run_env(tmp_path)) == []


def test_a_run_example_printing_other_than_its_page_shows_fails(
    project: Path, tmp_path: Path
) -> None:
    written = tmp_path / "page.md"
    written.write_text(
        "<!-- example: run -->\n```sh\necho hello\n```\n"
        "<!-- example: output -->\n```text\nhello\n```\n"
        "<!-- example: run -->\n```sh\necho goodbye\n```\n"
        "<!-- example: output -->\n```text\nhello\n```\n"
        "<!-- example: run -->\n```console\n$ echo one; echo two\none\n...\n$ false\n```\n"
    )
    failures = run_page(blocks(written), project, run_env(tmp_path))
    assert [f.split(":")[1] for f in failures] == ["10", "18"], failures
    assert "printed what its output block does not show\ngoodbye" in failures[0]
    assert "exit code 1" in failures[1]
