"""`qwex` at a terminal: status colours, the live phase line, shell completion.

The terminal cases run the real console script on a pseudo-terminal; the same commands
with their output piped must print no escape code at all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import Terminal, unavailable

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
ESC = "\x1b["
CLEAR_LINE = "\r\x1b[2K"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
TERMINAL_ENV = {"TERM": "xterm-256color", "NO_COLOR": ""}


class Pty(Terminal):
    """`qwex ARGS` with stdout and/or stderr on a pseudo-terminal (the other piped), and an
    empty stdin."""

    def __init__(
        self,
        *args: str,
        stdout: bool = True,
        stderr: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            *args,
            env={**TERMINAL_ENV, **(env or {})},
            stdin=False,
            stdout=stdout,
            stderr=stderr,
        )


def on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    code, shown = Pty(*args, env=env).finish()
    assert code == 0, f"qwex {' '.join(args)} exited {code}: {shown}"
    return shown


def make_runs(qwex: Qwex) -> dict[str, str]:
    """One succeeded and one failed run: {status: full id}."""
    qwex("run", "-q", "--name", "good", "--", "true", check=True)
    qwex("run", "-q", "--", "false")
    return {r["status"]: r["id"] for r in json.loads(qwex("list", "--json", check=True).stdout)}


# -- colours -----------------------------------------------------------------------------


def test_list_colours_statuses_on_a_terminal_and_keeps_columns_aligned(
    project: Path, qwex: Qwex
) -> None:
    make_runs(qwex)
    shown = on_terminal("list")
    assert f"{ESC}32msucceeded{ESC}0m" in shown, shown  # green
    assert f"{ESC}31mfailed{ESC}0m" in shown, shown  # red
    lines = ANSI.sub("", shown).splitlines()
    assert lines[0].startswith("ID ") and len(lines) == 3, lines
    # Padding is outside the colour: every column starts where its header does.
    for header in ("BACKEND", "COMMAND", "NAME"):
        column = lines[0].index(header)
        for line in lines[1:]:
            assert line[column - 2 : column] == "  " and line[column] != " ", (header, lines)


def test_status_colours_the_status_on_a_terminal(project: Path, qwex: Qwex) -> None:
    runs = make_runs(qwex)
    assert f"{ESC}31mfailed{ESC}0m" in on_terminal("status", runs["failed"])
    assert f"{ESC}32msucceeded{ESC}0m" in on_terminal("status", "good")


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--no-color"], {}),
        ([], {"NO_COLOR": "1"}),
        ([], {"TERM": "dumb"}),
    ],
    ids=["--no-color", "NO_COLOR", "TERM=dumb"],
)
def test_no_colours_when_asked(
    project: Path, qwex: Qwex, args: list[str], env: dict[str, str]
) -> None:
    runs = make_runs(qwex)
    for command in (["list"], ["status", runs["failed"]]):
        shown = on_terminal(*args, *command, env=env)
        assert "failed" in shown and ESC not in shown, shown


def test_no_colours_in_a_pipe(project: Path, qwex: Qwex) -> None:
    runs = make_runs(qwex)
    for command in (["list"], ["status", runs["failed"]]):
        result = qwex(*command, env=TERMINAL_ENV, check=True)
        assert "failed" in result.stdout and ESC not in result.stdout, result.stdout


# -- the phase line ----------------------------------------------------------------------


def pending_run(project: Path) -> str:
    """A run that stays pending: its record exists, no agent was started (a local run is
    recorded lost only after 30 s)."""
    from qwex_core.models import JobSpec
    from qwex_core.store import RunStore

    return RunStore(project).create(JobSpec(command=["sleep", "600"])).id


def test_logs_follow_shows_the_phase_of_a_pending_run_on_a_terminal_only(
    project: Path, qwex: Qwex
) -> None:
    run_id = pending_run(project)
    short = run_id[-12:]
    piped = subprocess.Popen(
        [QWEX, "logs", "-f", run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **TERMINAL_ENV},
    )
    try:
        terminal = Pty("logs", "-f", run_id, stdout=False)
        before = ANSI.sub("", terminal.read_until("…"))  # the status word may be dimmed
        assert f"\rqwex: run {short} pending…" in before, before
        qwex("cancel", run_id, check=True)
        code, shown = terminal.finish()
        out, err = piped.communicate(timeout=60)
    finally:
        if piped.poll() is None:
            piped.kill()
    assert code == 0, shown
    # The line is erased before the last word, which then stands alone on its line.
    last = shown.rindex("pending")
    assert CLEAR_LINE in shown[last:], shown
    assert shown.endswith(f"{CLEAR_LINE}qwex: run {short} finished: cancelled, cancelled by user\n")
    # A follower whose stderr is not a terminal sees none of it.
    assert piped.returncode == 0 and out == ""
    assert err == f"qwex: run {short} finished: cancelled, cancelled by user\n", err


def test_run_on_a_terminal_shows_its_output_unchanged(project: Path) -> None:
    code, shown = Pty("run", "--", "sh", "-c", "echo one; echo two >&2").finish()
    assert code == 0, shown
    body = shown.split("re-attaches\n", 1)[1]
    assert sorted(body.replace(CLEAR_LINE, "").splitlines()) == ["one", "two"], shown


# -- completion --------------------------------------------------------------------------


def complete(line: str, *, shell: str = "bash", env: dict[str, str] | None = None) -> list[str]:
    """What `qwex` offers for the last word of `line` (click's protocol, as the shell
    script `qwex completion SHELL` calls it)."""
    words = line.split(" ")
    result = subprocess.run(
        [QWEX],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            **(env or {}),
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
            "_QWEX_COMPLETE": f"{shell}_complete",
        },
    )
    assert result.returncode == 0 and not result.stderr, result
    return [row.split(",", 1)[1] for row in result.stdout.splitlines() if row.startswith("plain,")]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shell_script(project: Path, qwex: Qwex, shell: str) -> None:
    result = qwex("completion", shell, check=True)
    assert "_QWEX_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout


def test_completion_script_installs_in_bash(project: Path) -> None:
    if shutil.which("bash") is None:
        unavailable("no bash here")
    result = subprocess.run(
        ["bash", "-c", f'eval "$("{QWEX}" completion bash)" && complete -p qwex'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "_qwex_completion" in result.stdout, result


def test_completion_of_commands(project: Path) -> None:
    assert complete("qwex st") == ["status"]
    assert {"run", "list", "logs", "completion"} <= set(complete("qwex "))


def test_completion_of_run_ids_and_names(project: Path, qwex: Qwex) -> None:
    runs = make_runs(qwex)
    shorts = {run_id[-12:] for run_id in runs.values()}
    for command in ("status", "logs", "wait", "rm"):
        offered = complete(f"qwex {command} ")
        assert shorts | {"good"} == set(offered), (command, offered)
    assert complete("qwex cancel ") == []  # both have ended: nothing to cancel
    one = runs["failed"][-12:]
    assert complete(f"qwex status {one[:6]}") == [one]
    assert complete("qwex logs -f go") == ["good"]


def test_completion_of_backends(project: Path) -> None:
    assert "local" in complete("qwex run -b ")
    assert complete("qwex run --backend lo") == ["local"]
    assert "local" in complete("qwex list -b ")


def test_completion_of_profiles(project: Path) -> None:
    (project / "qwex.toml").write_text('[profiles.gpu]\nbackend = "local"\n[profiles.cpu]\n')
    assert complete("qwex run -p ") == ["cpu", "gpu"]
    assert complete("qwex config --profile g") == ["gpu"]
    # A configuration that cannot be read completes nothing, and says nothing.
    (project / "qwex.toml").write_text("[profiles.gpu\n")
    assert complete("qwex run -p ") == []


def test_no_color_works_after_the_subcommand_too(project: Path, qwex: Qwex) -> None:
    make_runs(qwex)
    for args in (("list", "--no-color"), ("status", "good", "--no-color")):
        shown = on_terminal(*args)
        assert "succeeded" in shown and ESC not in shown, (args, shown)


def test_cancel_completes_live_runs_only(project: Path, qwex: Qwex) -> None:
    runs = make_runs(qwex)
    live = qwex("run", "-d", "--name", "slow", "--", "sleep", "60", check=True).stdout.strip()
    try:
        offered = complete("qwex cancel ")
        assert live in offered and "slow" in offered
        assert runs["succeeded"][-12:] not in offered and "good" not in offered
        assert runs["succeeded"][-12:] in complete("qwex status ")
    finally:
        qwex("rm", "-f", live, check=True)
