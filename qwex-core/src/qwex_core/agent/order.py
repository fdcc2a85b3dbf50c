"""The write-order index of a run's output: `output.idx` beside `stdout.log` and `stderr.log`.

The two log files hold each stream's bytes exactly as the command wrote them; they
cannot say which came first across streams. The agent therefore appends one
fixed-size record per piece of output it read, *after* the piece's bytes are in its
log file: when it was read (nanoseconds since the epoch), which stream, and where in
that stream's log it lies. Readers (`qwex_core.logs`) replay both streams in this
order, stamp lines with these times (`qwex logs -t`) and find `--since`/`--tail`
without reading whole logs. A run folder without the file (recorded by an older
qwex) is read stream after stream, as before.

A record is 24 bytes, little-endian: time (int64 ns), offset (uint64: byte of its
stream's log where the piece begins), length (uint32), stream (uint32: 1 stdout,
2 stderr, as their file descriptors). Appends are single `write`s on an O_APPEND
descriptor, so a reader sees whole records (a torn last one is left for later).
"""

from __future__ import annotations

import struct

INDEX_FILE = "output.idx"
RECORD = struct.Struct("<qQII")
STREAM_CODES = {"stdout": 1, "stderr": 2}
STREAM_NAMES = {code: name for name, code in STREAM_CODES.items()}


def record(time_ns: int, stream: int, offset: int, length: int) -> bytes:
    """One index record (see the module docstring)."""
    return RECORD.pack(time_ns, offset, length, stream)
