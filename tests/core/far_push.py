"""The guide's far-away backend (docs/plugins.md) with a far side that pushes its log as it
is written (`follow_log`), times each piece (`LogBytes.at`) and keeps a note in the record
(`Observation.data`): the optional parts of the observed-run contract."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from qwex_core.errors import BackendError
from qwex_core.models import Run
from qwex_core.observed import LogBytes, Observation
from qwex_far.runner import FAR, FarRunner  # type: ignore[import-not-found,unused-ignore]

STAMP = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
"""The far side's time of every piece it serves."""
FINAL = ("succeeded", "failed", "cancelled", "lost")


class PushingFar(FarRunner):  # type: ignore[misc]
    def refused(self) -> bool:
        """Reads are refused (`no-reads` in the far root): only the push can copy."""
        return bool((self.root() / "no-reads").exists())

    def root(self) -> Any:
        return importlib.import_module("qwex_far.runner").FAR  # the test's far root

    def read_log(self, run: Run, stream: str, offset: int) -> bytes | Sequence[LogBytes]:
        if self.refused():
            raise BackendError("the far side refuses reads")
        data: bytes = super().read_log(run, stream, offset)
        return [LogBytes(stream, offset, data, at=STAMP)] if data else b""

    def observe(self, run: Run) -> Observation | None:
        seen: Observation | None = super().observe(run)
        return None if seen is None else replace(seen, data={"far-host": "node-7"})

    def follow_log(self, run: Run, offsets: Mapping[str, int]) -> Iterator[LogBytes | None] | None:
        if os.environ.get("FAR_NO_PUSH"):
            return None
        return self._tail(run, dict(offsets))

    def _tail(self, run: Run, offsets: dict[str, int]) -> Iterator[LogBytes | None]:
        far = self.far(run)
        while True:
            moved = False
            for stream in self.streams:
                try:
                    with open(far / f"{stream}.log", "rb") as fh:
                        fh.seek(offsets[stream])
                        data = fh.read(1 << 16)
                except FileNotFoundError:
                    data = b""
                if data:
                    yield LogBytes(stream, offsets[stream], data, at=STAMP)
                    offsets[stream] += len(data)
                    moved = True
            if not moved:
                if (self.far_record(run) or {}).get("status") in FINAL:
                    yield None  # the end: core looks
                    return
                time.sleep(0.01)


__all__ = ["FAR", "PushingFar"]
