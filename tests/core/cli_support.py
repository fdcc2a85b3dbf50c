"""Helpers shared by the CLI tests (importable as `cli_support`): the installed console
script, waiting for a run's status, reading a pid a command wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

QWEX = str(Path(sys.executable).parent / "qwex")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
LIVE = {"pending", "queued", "running"}


def wait_status(
    qwex: Qwex, run_id: str, want: set[str] | None = None, timeout: float = 30
) -> dict[str, Any]:
    """The run's record once its status is in `want` (default: any final status)."""
    deadline = time.monotonic() + timeout
    while True:
        rec: dict[str, Any] = json.loads(qwex("status", run_id, "--json", check=True).stdout)
        if rec["status"] in want if want is not None else rec["status"] not in LIVE:
            return rec
        assert time.monotonic() < deadline, (
            f"run {run_id} stayed {rec['status']} for {timeout}s, wanted {want or 'an end'}"
        )
        time.sleep(0.05)


def pid_in(path: Path, timeout: float = 10) -> int:
    """The pid a command wrote to `path`, once it has written it."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"nothing written to {path}"
        time.sleep(0.02)
    return int(path.read_text())


class Terminal:
    """`qwex ARGS` on a pseudo-terminal: stdin, stdout and stderr all on it, as a person
    typing at a shell has them (so qwex may ask and read an answer); `stdin=False` gives it
    an empty stdin instead, `stdout=False` or `stderr=False` a pipe."""

    def __init__(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        stdin: bool = True,
        stdout: bool = True,
        stderr: bool = True,
    ) -> None:
        import os
        import pty

        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [QWEX, *args],
            stdin=slave if stdin else subprocess.DEVNULL,
            stdout=slave if stdout else subprocess.PIPE,
            stderr=slave if stderr else subprocess.PIPE,
            cwd=cwd,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, text: str, timeout: float = 20) -> str:
        """What the terminal showed until `text` appeared (a failure after `timeout`)."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not shown after {timeout}s: {self.seen!r}"
            if self._read(min(left, 0.5)) is False:
                raise AssertionError(f"qwex exited before showing {text!r}: {self.seen!r}")
        return self.seen.decode()

    def type(self, text: str) -> None:
        import os

        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Read to the end; qwex's exit code and everything the terminal showed."""
        import os

        deadline = time.monotonic() + timeout
        try:
            while self._read(max(deadline - time.monotonic(), 0.01)) is not False:
                assert time.monotonic() < deadline, f"qwex still running after {timeout}s"
            code = self.proc.wait(timeout=max(deadline - time.monotonic(), 1))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)
        return code, self.seen.decode().replace("\r\n", "\n")

    def _read(self, timeout: float) -> bool | None:
        """True: read something; None: nothing yet; False: the terminal was closed (EOF)."""
        import os
        import select

        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        self.seen += data
        return bool(data) or False


TREE = (
    "sh -c 'sleep 300 >/dev/null 2>&1 & echo $! > grandchild.pid; wait' >/dev/null 2>&1 & "
    "echo $! > child.pid; echo $$ > command.pid; echo ready; wait"
)
"""A command with a child and a grandchild (background jobs: a non-interactive shell starts
them ignoring SIGINT, so Ctrl-C alone does not end them); each writes its pid to a file."""


def tree_pids(project: Path) -> list[int]:
    """The pids `TREE` wrote in `project`: the command, its child, its grandchild."""
    return [pid_in(project / f"{name}.pid") for name in ("command", "child", "grandchild")]


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not: it has ended, it is only not reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def assert_gone(pids: list[int], timeout: float = 10) -> None:
    """Every process of `pids` has ended (the kernel may take a moment to tear a killed one
    down; a live one after `timeout` is a failure naming it)."""
    import os
    import signal

    deadline = time.monotonic() + timeout
    while left := [pid for pid in pids if alive(pid)]:
        if time.monotonic() >= deadline:
            for pid in left:  # the failure is reported; the machine is not left with them
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"processes left behind: {left}")
        time.sleep(0.05)


def unavailable(message: str) -> None:
    """Skip on a laptop, fail under CI (env `CI`, set by `.ci/run`, which runs as root on a
    machine with bash and util-linux): a test must never silently not run there."""
    import os

    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI this is an error", pytrace=False)
    pytest.skip(message)
