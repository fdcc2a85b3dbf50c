"""Run one command under supervision and keep its run record current.

The supervisor starts the command in its own process group, copies its
stdout and stderr into the run's log files (and, unless quiet, through to its
own), noting when and in which order it read each piece in the write-order
index (`order`), forwards SIGINT/SIGTERM to the group and kills it after a
grace period, reaps every child (it may be PID 1 in a container), writes each transition
of the run record, and returns the command's exit code (128+N for signal N).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import signal
import subprocess
import time

from qwex_core.agent import cgroup
from qwex_core.agent.order import INDEX_FILE, STREAM_CODES
from qwex_core.agent.order import record as index_record
from qwex_core.agent.record import (
    FINAL_STATUSES,
    STDERR_FILE,
    STDOUT_FILE,
    cancel_reason,
    now_iso,
    read_record,
    transition,
    write_record,
    write_termination_log,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the agent does not import typing
if TYPE_CHECKING:
    from typing import Any

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031
DRAIN_TIMEOUT = 2.0
"""How long to keep reading pipes after the command exited, in case an escaped
descendant still holds them open."""
AGENT_ERROR = 125
"""Exit code when the agent itself cannot run (as `docker run` does)."""
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def shell_form(command: list[str]) -> list[str]:
    """A single argument with spaces in it is a shell command line."""
    if len(command) == 1 and any(ch.isspace() for ch in command[0]):
        return ["/bin/sh", "-c", command[0]]
    return list(command)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Supervisor:
    # A plain class (no dataclasses, no pathlib): every import costs start-up time in containers.
    def __init__(
        self,
        run_dir: str,
        command: list[str],
        grace: float = 10.0,
        passthrough: bool = True,
        snapshot: str | None = None,
        termination_log: str | None = None,
        workdir: str | None = None,
        cgroups: list[str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.cgroups = list(cgroups or [])
        """The run's own cgroup folders (made by the local runner): the command is put in
        them, and they are removed when the run ends."""
        self.workdir = workdir
        self.command = command
        self.grace = grace
        self.passthrough = passthrough
        self.snapshot = snapshot
        self.termination_log = termination_log
        self.record: dict[str, Any] = {}
        self._pending_signals: list[int] = []
        self._cancel_signal: str | None = None
        self._oom_before: tuple[int, str] | None = None
        self._index = -1
        """The write-order index (`order`), open for appending while output is copied."""
        self._ends: dict[int, int] = {}
        """Per open log descriptor: its size, where the next piece begins."""

    def _path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    def run(self) -> int:
        """Supervise the command to its end; return the exit code to exit with."""
        os.makedirs(self.run_dir, exist_ok=True)
        self.record = read_record(self.run_dir) or self._new_record()
        if self.record.get("status") in FINAL_STATUSES:
            self._say(f"run {self.record.get('id')} already ended ({self.record['status']})")
            return AGENT_ERROR
        self.record.update(agent_pid=os.getpid(), host=os.uname().nodename)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        previous = self._install_signals(wake_w)
        try:
            if cancel_reason(self.run_dir) is not None:
                return self._finish_cancelled_before_start()
            if self.snapshot is not None and not self._unpack_snapshot():
                return AGENT_ERROR
            if self.workdir is not None and not self._enter_workdir():
                return AGENT_ERROR
            return self._supervise(wake_r)
        finally:
            signal.set_wakeup_fd(-1)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)

    # -- setup ---------------------------------------------------------------

    def _new_record(self) -> dict[str, Any]:
        return {
            "id": os.path.basename(os.path.normpath(self.run_dir)),
            "backend": "local",
            "spec": {"command": self.command},
            "status": "pending",
            "reason": None,
            "created_at": now_iso(),
            "history": [],
        }

    def _install_signals(self, wake_w: int) -> dict[int, Any]:
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        previous: dict[int, Any] = {}
        for signum in (*FORWARDED, signal.SIGCHLD):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGCHLD:
            self._pending_signals.append(signum)

    def _open_log(self, name: str) -> int:
        fd = os.open(self._path(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._ends[fd] = os.fstat(fd).st_size
        return fd

    def _open_index(self) -> None:
        """Open the write-order index; made before any byte reaches a log, so a reader that
        sees output and no index knows the run was recorded without one."""
        self._index = os.open(self._path(INDEX_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _close_logs(self, *fds: int) -> None:
        for fd in fds:
            self._ends.pop(fd, None)
            os.close(fd)
        if self._index >= 0:
            os.close(self._index)
            self._index = -1

    def _log(self, fd: int, stream: int, data: bytes, read_at: int | None = None) -> None:
        """Append `data` (read at `read_at` ns, default now) to a log, then its index record:
        a reader never finds a record whose bytes are not in the log yet."""
        read_at = time.time_ns() if read_at is None else read_at
        _write_all(fd, data)
        offset = self._ends[fd]
        self._ends[fd] = offset + len(data)
        if self._index >= 0:
            os.write(self._index, index_record(read_at, stream, offset, len(data)))

    def _unpack_snapshot(self) -> bool:
        """Unpack the project snapshot into the working directory; on failure, end the run."""
        from qwex_core.agent.unpack import SnapshotError, unpack

        assert self.snapshot is not None
        try:
            unpack(self.snapshot, ".")
        except SnapshotError as exc:
            self._fail_before_start(str(exc))
            return False
        return True

    def _enter_workdir(self) -> bool:
        """Change into `workdir`, a folder of the working directory (the unpacked snapshot):
        an image without a shell starts a command in a sub-folder too."""
        assert self.workdir is not None
        root = os.path.realpath(".")
        target = os.path.realpath(self.workdir)
        if (target == root or target.startswith(root.rstrip("/") + "/")) and os.path.isdir(target):
            os.chdir(target)
            return True
        self._fail_before_start(f"workdir {self.workdir} is not a folder of the project")
        return False

    def _fail_before_start(self, reason: str) -> None:
        """End the run `failed` with `reason` before the command could start (agent error)."""
        self._say(reason)
        with contextlib.suppress(OSError):
            self._open_index()
            err_log = self._open_log(STDERR_FILE)
            try:
                self._log(err_log, STREAM_CODES["stderr"], f"qwex: {reason}\n".encode())
            finally:
                self._close_logs(err_log)
        self.record["exit_code"] = AGENT_ERROR
        transition(self.record, "failed", reason)
        self._write_final()

    # -- the run -------------------------------------------------------------

    def _supervise(self, wake_r: int) -> int:
        argv = shell_form(self.command)
        self._open_index()
        out_log, err_log = self._open_log(STDOUT_FILE), self._open_log(STDERR_FILE)
        self._oom_before = cgroup.oom_kills(self.cgroups)
        try:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    process_group=0,
                    preexec_fn=self._enter_cgroups if self.cgroups else None,
                )
            except OSError as exc:
                return self._finish_not_started(argv[0], exc, err_log)
            self.record["pid"] = proc.pid
            transition(self.record, "running")
            write_record(self.run_dir, self.record)
            status = self._pump(proc, wake_r, out_log, err_log)
        finally:
            self._close_logs(out_log, err_log)
        return self._finish(status)

    def _enter_cgroups(self) -> None:
        """In the child, before exec: into the run's cgroups, or one line on its stderr
        (the run's log) saying that it runs without its limits."""
        try:
            cgroup.enter(self.cgroups)
        except OSError as exc:
            message = f"qwex: cannot enter the run's cgroup ({exc}): the command runs without its limits\n"
            _write_all(2, message.encode())

    def _pump(self, proc: subprocess.Popen[bytes], wake_r: int, out_log: int, err_log: int) -> int:
        """Copy output and handle signals until the command has exited and its pipes are drained."""
        assert proc.stdout is not None and proc.stderr is not None
        sel = selectors.DefaultSelector()
        for pipe, log, through in ((proc.stdout, out_log, 1), (proc.stderr, err_log, 2)):
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, CHUNK)  # fewer, larger reads
            sel.register(pipe.fileno(), selectors.EVENT_READ, (log, through))  # through: 1, 2
        sel.register(wake_r, selectors.EVENT_READ, None)
        wait_status: int | None = None
        kill_at: float | None = None
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            if wait_status is not None and (len(sel.get_map()) == 1 or now >= (drain_until or 0)):
                break
            deadlines = [t for t in (kill_at, drain_until) if t is not None]
            timeout = max(0.0, min(deadlines) - now) if deadlines else 1.0
            for key, _ in sel.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        os.read(wake_r, 512)
                elif not self._copy(key.fd, *key.data):
                    sel.unregister(key.fd)
            while self._pending_signals:
                signum = self._pending_signals.pop(0)
                if self._cancel_signal is not None:
                    self._kill_group(proc.pid, signal.SIGKILL)  # asked twice: no more grace
                    kill_at = None
                else:
                    self._cancel_signal = signal_name(signum)
                    self._kill_group(proc.pid, signum)
                    kill_at = time.monotonic() + self.grace
            if kill_at is not None and time.monotonic() >= kill_at:
                self._kill_group(proc.pid, signal.SIGKILL)
                kill_at = None
            if wait_status is None:
                wait_status = self._reap(proc.pid)
                if wait_status is not None:
                    proc.returncode = os.waitstatus_to_exitcode(wait_status)
                    self._kill_group(proc.pid, signal.SIGKILL)  # nothing it started outlives it
                    drain_until = time.monotonic() + DRAIN_TIMEOUT
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
        self._reap(-1)
        return wait_status

    def _copy(self, fd: int, log: int, through: int) -> bool:
        """Move one chunk from a command pipe to its log (and through: 1 or 2, also the
        stream's code in the index). False at end of file."""
        data = os.read(fd, CHUNK)
        if not data:
            return False
        self._log(log, through, data, time.time_ns())
        if through >= 0 and self.passthrough:
            try:
                _write_all(through, data)
            except OSError as exc:  # our own reader went away: keep logging, stop passing through
                if exc.errno not in (errno.EPIPE, errno.EBADF, errno.EIO):
                    raise
                self.passthrough = False
        return True

    @staticmethod
    def _reap(main_pid: int) -> int | None:
        """Reap every exited child (we may be PID 1); return the wait status of `main_pid`."""
        found = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return found
            if pid == 0:
                return found
            if pid == main_pid:
                found = status

    @staticmethod
    def _kill_group(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signum)

    # -- endings -------------------------------------------------------------

    def _finish(self, wait_status: int) -> int:
        code = os.waitstatus_to_exitcode(wait_status)
        if code < 0:
            self.record["signal"] = signal_name(-code)
            code = 128 - code
        self.record["exit_code"] = code
        if self._cancel_signal is not None:
            reason = self._cancel_reason(f"received {self._cancel_signal}")
            transition(self.record, "cancelled", reason)
        elif code == 0:
            transition(self.record, "succeeded", "exit code 0")
        elif self.record.get("signal"):
            oom = (
                cgroup.oom_reason(self._oom_before, self.cgroups)
                if self.record["signal"] == "SIGKILL"
                else None
            )
            transition(self.record, "failed", oom or f"killed by {self.record['signal']}")
        else:
            # In the run's own cgroup every OOM kill is one of the command's processes: the
            # command outlived the kill of a child (as Docker's State.OOMKilled counts it).
            own = self._oom_before is not None and self._oom_before[1] in self.cgroups
            oom = cgroup.oom_reason(self._oom_before, self.cgroups) if own else None
            from qwex_core.agent.gang import reason as workers_reason  # only when it failed

            # A run of workers (`agent.gang`): which worker failed, and how.
            plain = workers_reason(self.run_dir) or f"exit code {code}"
            transition(self.record, "failed", f"{oom}; exit code {code}" if oom else plain)
        self._write_final()
        if code == AGENT_ERROR and self.termination_log is not None:
            return 1  # in a pod, 125 is the agent's own (its Job fails at once): see USAGE
        return code

    def _finish_not_started(self, program: str, exc: OSError, err_log: int) -> int:
        if isinstance(exc, FileNotFoundError):
            code, reason = 127, f"command not found: {program}"
        elif isinstance(exc, PermissionError):
            code, reason = 126, f"permission denied: {program}"
        else:
            code, reason = 126, f"cannot execute {program}: {exc.strerror or exc}"
        self._log(err_log, STREAM_CODES["stderr"], f"qwex: {reason}\n".encode())
        self._say(reason)
        self.record["exit_code"] = code
        transition(self.record, "failed", reason)
        self._write_final()
        return code

    def _finish_cancelled_before_start(self) -> int:
        transition(self.record, "cancelled", self._cancel_reason("cancelled before start"))
        self._write_final()
        return 128 + signal.SIGTERM

    def _write_final(self) -> None:
        """Write the final record durably, and the termination log when one is asked for;
        the run's cgroups (and whatever is left in them) are gone before it says so."""
        if self.cgroups:
            for folder in cgroup.remove(self.cgroups):
                self._say(f"cannot remove the run's cgroup {folder}")
        write_record(self.run_dir, self.record, durable=True)
        if self.termination_log is not None:
            try:
                write_termination_log(self.termination_log, self.record)
            except OSError as exc:
                self._say(f"cannot write the termination log {self.termination_log}: {exc}")

    def _cancel_reason(self, default: str) -> str:
        return cancel_reason(self.run_dir) or default

    def _say(self, message: str) -> None:
        with contextlib.suppress(OSError):
            os.write(2, f"qwex: {message}\n".encode())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
