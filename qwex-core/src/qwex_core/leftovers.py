"""What `qwex gc` reports: one thing a backend left behind (a container, a Job, a ConfigMap).

Each backend finds its own leftovers through the `qwex_collect_garbage` hook; core only
gathers the findings and shows them, so `qwex gc` covers every installed backend at once.
Backends import it as `qwex_core.garbage.Garbage`; it lives here, apart from
`why_removable`, so that the hookspecs naming it depend on nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Garbage:
    """A leftover of a run that is final or unknown, and whether it was removed."""

    backend: str
    kind: str
    """What it is, in the backend's words: `container`, `job`, `configmap`..."""
    name: str
    run: str
    """The run id it belonged to, `-` when it belongs to none."""
    why: str
    removed: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
