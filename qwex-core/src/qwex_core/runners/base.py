"""The interface a backend implements.

A runner turns a pending run record into a running command somewhere and
can find it again from the record alone: every method may be called by a
different qwex process than the one that started the run. The record and
the logs live in the run store; runners whose supervisor cannot write there
directly (a remote server) copy them in `refresh`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.store import RunStore


class Runner(ABC):
    """Base class of every backend. Subclass it and register it with `qwex_register_runners`."""

    uses_container: ClassVar[bool] = False
    """True when the backend runs `spec.container.image`; `qwex run --image` then applies."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        self.name = name
        self.store = store
        self.config = config

    def validate(self, spec: JobSpec) -> None:
        """Raise `SpecError` when this backend cannot run `spec` (e.g. no image given)."""

    @abstractmethod
    def start(self, run: Run) -> None:
        """Launch `run`, whose pending record already exists in the store.

        Return once the run is on its way; raise `BackendError` with a clear
        message when it cannot start (the caller records the run `failed`).
        """

    @abstractmethod
    def refresh(self, run: Run) -> Run:
        """Return the current record of a run that was not final when last read.

        Detect a vanished supervisor here and record the run `lost`.
        """

    @abstractmethod
    def cancel(
        self, run: Run, *, reason: str = "cancelled by user", interrupt: bool = False
    ) -> None:
        """Ask the run to stop: a polite signal (SIGINT when `interrupt`, else SIGTERM), then
        SIGKILL after `run.spec.grace_period`. Return without waiting; the record turns
        `cancelled` with `reason` once the supervisor has stopped the command."""

    def pause(self, run: Run, seconds: float) -> None:
        """Wait up to `seconds` for `run` to change while someone follows it. Backends that can
        be woken early (the local runner waits on its child process) return sooner."""
        time.sleep(seconds)

    def cleanup(self, run: Run) -> None:
        """Release what the backend still holds for a final run (a stopped container...)."""
