"""What qwex does for a person at a terminal: status colours, and the live phase line of a
run that has not started yet. Nothing of it reaches a pipe or a file, so scripts see the
same bytes whether or not a terminal is around.

Colours follow https://no-color.org: none when `NO_COLOR` is set to anything non-empty,
with `qwex --no-color`, with `TERM=dumb`, or when the stream is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import IO, TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from qwex_core.models import Run

STATUS_STYLES: dict[str, dict[str, Any]] = {
    "succeeded": {"fg": "green"},
    "failed": {"fg": "red"},
    "lost": {"fg": "red"},
    "unreadable": {"fg": "red"},
    "cancelled": {"fg": "yellow"},
    "running": {"fg": "cyan"},
    "pending": {"dim": True},
    "queued": {"dim": True},
}
WAITING = frozenset({"pending", "queued"})
"""Statuses of a run that has not started: the phase line shows them."""
SHOW_AFTER = 0.2
"""Seconds a run may wait before the phase line shows: a local run starts sooner, and a
line drawn and erased at once would only flicker."""
CLEAR_LINE = "\r\x1b[2K"
"""Back to the start of the line and erase it."""


def colour_wanted(stream: IO[Any]) -> bool:
    """Whether to colour what goes to `stream`."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_root().params.get("no_color") or ctx.meta.get(NO_COLOR)):
        return False
    return is_terminal(stream)


NO_COLOR = "qwex.no_color"
"""Where a subcommand's `--no-color` is noted (`ctx.meta`, shared by the whole command)."""


def _note_no_color(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[NO_COLOR] = True


no_color_option = click.option(
    "--no-color",
    is_flag=True,
    expose_value=False,
    callback=_note_no_color,
    help="No colours, even on a terminal (as `qwex --no-color` or NO_COLOR=1).",
)
"""`--no-color` after a subcommand as well as before it (`qwex list --no-color`)."""


def is_terminal(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def paint_status(text: str, status: str, colour: bool) -> str:
    """`text` in the colour of `status` (unchanged without `colour` or for another status)."""
    style = STATUS_STYLES.get(status)
    if not colour or style is None:
        return text
    return click.style(text, **style)


class PhaseLine:
    """One line on a terminal's stderr saying what a run waits for (`qwex: run 3f2a9c1d4e5f
    queued: no free GPU…`), redrawn when that changes and erased once the run is running
    or prints output. Does nothing when stderr is not a terminal."""

    def __init__(self, stream: IO[str], *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled and is_terminal(stream)
        self.colour = self.enabled and colour_wanted(stream)
        self.shown: str | None = None
        self.since = time.monotonic()
        self.width = 80
        if self.enabled:
            with contextlib.suppress(OSError, ValueError):
                self.width = os.get_terminal_size(stream.fileno()).columns or 80

    def update(self, run: Run) -> None:
        """Called with every observation of the run while it is followed: cheap when nothing
        changed."""
        if not self.enabled:
            return
        status = run.status.value
        if status not in WAITING:
            self.clear()
            return
        if self.shown is None and time.monotonic() - self.since < SHOW_AFTER:
            return
        from qwex_core.store import short_id

        head = f"qwex: run {short_id(run.id)} "
        rest = f": {run.reason}…" if run.reason and run.reason != status else "…"
        room = self.width - 1 - len(head) - len(status)  # a wrapped line could not be erased
        if len(rest) > room:
            rest = rest[: max(room - 1, 0)] + "…"
        text = head + paint_status(status, status, self.colour) + rest
        if text != self.shown:
            self._write(CLEAR_LINE + text)
            self.shown = text

    def stop(self) -> None:
        """Erase the line for good: the run's output flows, or following ends."""
        self.clear()
        self.enabled = False

    def clear(self) -> None:
        """Erase the line if one is shown (before output, a message, or the end)."""
        if self.shown is not None:
            self.shown = None
            self._write(CLEAR_LINE)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(text)
            self.stream.flush()
