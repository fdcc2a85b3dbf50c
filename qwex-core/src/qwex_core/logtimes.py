"""Times of log lines: the stamp `qwex logs -t` prints and the times `--since` accepts.

A stamp is RFC 3339 in UTC with nanoseconds, as `docker logs -t` prints it
(`2026-12-02T05:50:02.123456789Z`), so a stamp pasted into `--since` keeps that line.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from qwex_core.logs import Chunk

NS = 1_000_000_000
UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}
DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNIX = re.compile(r"\d+(?:\.\d{1,9})?")
ISO = re.compile(
    r"(?P<head>\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d)?)?)(?:\.(?P<frac>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d\d(?::?\d\d)?)?"
)
SINCE_HELP = (
    "a duration before now (10m, 1h30m, 90s) or a time (2026-12-02T05:50:02Z, RFC 3339 "
    "as `qwex logs -t` prints it; without a zone, local time; or Unix seconds)"
)


def stamp(ns: int) -> str:
    """`ns` since the epoch as RFC 3339 UTC with nanoseconds."""
    seconds, fraction = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def parse_time(text: str) -> int | None:
    """An RFC 3339 time with its zone (`2026-12-02T05:50:02.123456789Z`, as Kubernetes and
    `qwex logs -t` print them) as ns since the epoch; None when it is not one."""
    match = ISO.fullmatch(text)
    if match is None or match["zone"] is None or "T" not in match["head"]:
        return None
    try:
        return _iso_ns(match)
    except ValueError:
        return None


def _iso_ns(match: re.Match[str]) -> int:
    zone = match["zone"] or ""
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif zone and ":" not in zone:
        zone = zone[:3] + ":" + (zone[3:] or "00")
    moment = datetime.fromisoformat(match["head"].replace(" ", "T") + zone)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time without a zone is the local time
    seconds = int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    return seconds * NS + int((match["frac"] or "0")[:9].ljust(9, "0"))


def parse_since(text: str, now_ns: int | None = None) -> int:
    """`--since TEXT` as ns since the epoch; ValueError when it is neither a duration nor
    a time (see `SINCE_HELP`)."""
    text = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if text and DURATION.sub("", text) == "" and DURATION.match(text):
        total = 0
        for number, unit in DURATION.findall(text):
            whole, _, part = number.partition(".")
            total += (
                int(whole or 0) * UNITS[unit] + int(part.ljust(9, "0")[:9] or 0) * UNITS[unit] // NS
            )
        return now - total
    if UNIX.fullmatch(text):
        whole, _, part = text.partition(".")
        return int(whole) * NS + int(part.ljust(9, "0"))
    match = ISO.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return _iso_ns(match)


class Stamper:
    """Prefixes every line with the stamp of its time (`qwex logs -t`): the time of the
    chunk holding its first byte, per stream; a chunk of unknown time gets no stamp."""

    def __init__(self) -> None:
        self._at_line_start: dict[str, bool] = {}

    def __call__(self, chunk: Chunk) -> bytes:
        prefix = f"{stamp(chunk.time)} ".encode() if chunk.time is not None else b""
        parts = chunk.data.split(b"\n")
        out = bytearray()
        at_start = self._at_line_start.get(chunk.stream, True)
        for number, part in enumerate(parts):
            last = number == len(parts) - 1
            if last and not part:
                break  # the chunk ended a line: the next line's stamp comes with its bytes
            if number > 0 or at_start:
                out += prefix
            out += part
            if not last:
                out += b"\n"
        self._at_line_start[chunk.stream] = chunk.data.endswith(b"\n")
        return bytes(out)
