"""Printing for the CLI: JSON for scripts, short tables and messages for people."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from qwex_core.models import Run


def emit_json(data: Any) -> None:
    import json  # here: `qwex --help` imports this module, and prints no JSON

    write_out(json.dumps(data, indent=2, default=str) + "\n")


def write_out(text: str) -> None:
    """All of `text` on stdout, or `BrokenPipeError` (exit code 141) if its reader left.

    A write larger than a pipe holds that the reader leaves in the middle of returns short,
    and Python's text layer drops the rest without an error: `qwex list --json | head -c 1`
    would exit 0. Writing the rest ourselves meets the closed pipe and raises."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        stream.flush()
        return
    stream.flush()
    data = memoryview(text.encode(stream.encoding or "utf-8", stream.errors or "strict"))
    while data:
        data = data[buffer.write(data) :]
    buffer.flush()


PIPE_CLOSED = 141
"""The exit code when the reader of our output went away (`qwex logs RUN | head -1`): what a
shell reports for a process killed by SIGPIPE (128 + 13)."""


class Terminated(BaseException):
    """Raised by the SIGTERM handler of a foreground `qwex run` (not an `Exception`, so no
    error handler takes it for a failure)."""


TERMINATED = 143
"""The exit code after SIGTERM (128 + 15)."""
INTERRUPTED = 130
"""The exit code after Ctrl-C (128 + SIGINT), as shells give."""


def silence_output() -> None:
    """Point stdout and stderr at /dev/null once a reader has gone: what is still buffered
    is then dropped quietly instead of failing again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)


def note(message: str) -> None:
    """A qwex message (not the command's output) on stderr; nothing if stderr is closed."""
    with contextlib.suppress(OSError):
        click.echo(f"qwex: {message}", err=True)


def run_json(run: Run) -> dict[str, Any]:
    return run.model_dump(mode="json")


def _when(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def ago(when: datetime | str | None, now: datetime | None = None) -> str:
    """How long before `now` (default: this instant) `when` was; `qwex list` gives one `now`
    for all its rows (asking the clock for each of 10,000 rows was 3% of the listing)."""
    when = _when(when)
    if when is None:
        return "-"
    return ago_text(((now or datetime.now(UTC)) - when).total_seconds())


def ago_text(seconds: float) -> str:
    """`ago`'s text for a number of seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(max(seconds, 0))}s ago"


def duration(
    started: datetime | str | None,
    finished: datetime | str | None,
    now: datetime | None = None,
) -> str:
    """From `started` to `finished`, or to `now` (default: this instant) while unfinished."""
    start = _when(started)
    if start is None:
        return "-"
    end = _when(finished) or now or datetime.now(UTC)
    return duration_text((end - start).total_seconds())


def duration_text(seconds: float) -> str:
    """`duration`'s text for a number of seconds."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def command_text(command: list[str], width: int = 50) -> str:
    from qwex_core.row_cache import shell_text

    return clipped(shell_text(command), width)


def clipped(text: str, width: int) -> str:
    """`text`, cut to `width` characters with an ellipsis when longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def column_widths(rows: list[list[str]], headers: list[str]) -> list[int]:
    """The width of each column: its longest cell or header (a column at a time through
    `map`: half the time of a generator per column over 10,000 rows)."""
    from operator import itemgetter

    if not rows:
        return [len(h) for h in headers]
    return [max(len(h), *map(len, map(itemgetter(i), rows))) for i, h in enumerate(headers)]


def table(
    rows: list[list[str]],
    headers: list[str],
    paint: dict[int, Callable[[str], str]] | None = None,
) -> None:
    """Aligned columns on stdout; `paint` styles the cells of some columns (by index) after
    they are measured, so escape codes never shift a column."""
    widths = column_widths(rows, headers)
    paint = paint or {}

    def cell(i: int, text: str) -> str:
        pad = " " * (widths[i] - len(text))
        return paint[i](text) + pad if i in paint else text + pad

    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    if paint:
        lines += ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in rows]
    else:  # the same lines, without a call per cell (`qwex list` of 10,000 runs)
        lines += ["  ".join(map(str.ljust, r, widths)).rstrip() for r in rows]
    write_out("\n".join(lines) + "\n")
