"""A misspelled option is an error, never the command."""

from __future__ import annotations

import json
from pathlib import Path

from cli_support import Qwex


def _runs(qwex: Qwex) -> list[dict[str, object]]:
    runs: list[dict[str, object]] = json.loads(qwex("list", "--json", check=True).stdout)
    return runs


def test_an_unknown_option_before_the_command_is_a_usage_error(project: Path, qwex: Qwex) -> None:
    typo = qwex("run", "--memroy", "1Gi", "echo", "hi")
    assert typo.returncode == 2, typo.stderr
    assert "--memroy" in typo.stderr and "--memory" in typo.stderr
    other = qwex("run", "--nodez", "2", "--", "echo", "hi")
    assert other.returncode == 2 and "--nodez" in other.stderr
    short = qwex("run", "-x", "echo", "hi")
    assert short.returncode == 2 and "-x" in short.stderr
    assert _runs(qwex) == []
    # After the command, or after `--`, a dash is the command's own.
    assert qwex("run", "echo", "--memroy", check=True).stdout == "--memroy\n"
    assert qwex("run", "--", "echo", "-n", "hi", check=True).stdout == "hi"
    assert len(_runs(qwex)) == 2


def test_input_piped_into_run_is_named_as_not_forwarded(project: Path, qwex: Qwex) -> None:
    import subprocess

    from cli_support import QWEX

    piped = subprocess.run(
        ["sh", "-c", f"echo data | {QWEX} run -- cat"], capture_output=True, text=True, timeout=60
    )
    assert piped.returncode == 0 and piped.stdout == ""
    lines = [line for line in piped.stderr.splitlines() if "stdin" in line]
    assert len(lines) == 1 and "not forwarded" in lines[0], piped.stderr
    quiet = subprocess.run(
        [QWEX, "run", "--", "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert "stdin" not in quiet.stderr


def test_resource_flags_the_local_backend_enforces_are_not_named(project: Path, qwex: Qwex) -> None:
    """As root on a machine with cgroups the limits are enforced: no line says otherwise
    (where they are not, one line does: tests/core/test_local_limits.py, tests/nonroot)."""
    import os

    from users import unavailable

    if os.geteuid() != 0:
        unavailable("enforcing limits needs root (or a delegated cgroup)")
    result = qwex("run", "--memory", "1Gi", "--cpu", "2", "--", "true")
    assert result.returncode == 0, result.stderr
    assert "not enforced" not in result.stderr, result.stderr
    plain = qwex("run", "--", "true", check=True)
    assert "not enforced" not in plain.stderr
