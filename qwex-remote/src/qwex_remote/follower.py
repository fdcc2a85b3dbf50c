"""A thread that streams one remote job's output into the local run while someone follows it.

It reads the server's follow stream (Server-Sent Events) from the offsets copied so
far, appends each piece to the run's log files and wakes the waiter at once
(`changed`): a line the job prints reaches `qwex logs -f` as a stream, not a poll.
At the job's end it records the end locally. A server that stops (`ServerShutdown`)
or drops the connection is followed again later from the same offsets.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from qwex_core.agent.record import FINAL_STATUSES

from qwex_remote import mirror
from qwex_remote.protocol import APIError, JobEnd, JobState, LogPiece, ServerShutdown, Unreachable

if TYPE_CHECKING:
    from qwex_remote.protocol import JobAPIClient
    from qwex_remote.runner import RemoteRunner

RETRY_FIRST = 0.1
RETRY_MOST = 2.0
"""Seconds between attempts to reach a server that went away, doubling up to this."""


class Follower:
    def __init__(
        self,
        runner: RemoteRunner,
        run_id: str,
        job_id: str,
        client: JobAPIClient,
        *,
        base_url: str = "",
    ) -> None:
        self.runner = runner
        self.base_url = base_url
        self.run_id = run_id
        self.job_id = job_id
        self.client = client
        self.changed = threading.Event()
        self.problem: str | None = None
        """Why following stopped for good (a refused token), for the next probe to say."""
        self._stopped_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True, name="qwex-remote-log")

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def ended_within(self, seconds: float) -> bool:
        """Whether following stopped by itself less than `seconds` ago."""
        return self._stopped_at is not None and time.monotonic() - self._stopped_at < seconds

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.changed.set()

    def _main(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # a thread's traceback would land in the user's terminal
            if not self._stop.is_set():
                self.problem = f"following run {self.run_id} stopped: {type(exc).__name__}: {exc}"
        finally:
            self._stopped_at = time.monotonic()
            self.changed.set()
            with contextlib.suppress(Exception):
                self.client.close()

    def _loop(self) -> None:
        run_dir = self.runner.store.run_dir(self.run_id)
        delay = RETRY_FIRST
        while not self._stop.is_set():
            try:
                if self._stream(run_dir):
                    return
                delay = RETRY_FIRST  # the stream was cut after working: try again soon
            except Unreachable as exc:  # also a 503 (`Degraded`): said once, followed again
                self.runner.server_down(self.base_url, exc)
            except APIError as exc:
                if exc.status != 404:  # 404: the server forgot the job; a probe says so
                    self.problem = f"following run {self.run_id} on the server: {exc}"
                return
            self.changed.set()  # let the waiter look (the record may have changed)
            self._stop.wait(delay)
            delay = min(delay * 2, RETRY_MOST)

    def _stream(self, folder: Path) -> bool:
        """Follow once; True when the job ended (its end is recorded) or following stops."""
        events = self.client.follow(self.job_id, mirror.offsets(folder))
        try:
            for event in events:
                if self._stop.is_set():
                    return True
                if isinstance(event, LogPiece):
                    if not mirror.append(folder, event):
                        return False  # a gap: follow again from what was copied
                    self.changed.set()
                elif isinstance(event, JobEnd):
                    self._ended(event)
                    return True
                elif isinstance(event, ServerShutdown):
                    return False
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
        return False

    def _ended(self, end: JobEnd) -> None:
        """The job's end, with its times from the server when it answers."""
        try:
            state = self.client.get(self.job_id)
        except (Unreachable, APIError):
            state = JobState(
                id=self.job_id, submission_id=self.run_id, submitter="", backend="", status=""
            )
        if state.status not in FINAL_STATUSES:  # not fetched, or the database trails the stream
            state = replace(
                state,
                status=end.status,
                reason=end.reason,
                exit_code=end.exit_code,
                signal=end.signal,
            )
        self.runner.finish(self.run_id, state, streamed=True)
