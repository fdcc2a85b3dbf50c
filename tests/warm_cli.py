"""The fast loop's way to start `qwex`: a child forked from a warm process that has already
imported what every command imports (click, pluggy, pydantic's model machinery, every
qwex-core module and the backends' plugin modules).

Why: the fast loop (`nox -s unit`) starts the real CLI some 700 times, and each start spent
most of its CPU importing those again (measured with `getrusage` over the children: a
`qwex status` 110 ms started, 47 ms forked from the test process, 21 ms forked from the
warm process; a local `qwex run -q -- true`, with its agent, about 300, 156 and 104 ms).

The warm process (one per test process, started on first use, `python warm_cli.py`) only
imports: it never runs a command itself, and the tests cannot reach its state. For each
command it forks a child, which takes the test's working directory, environment, arguments
and stdin/stdout/stderr (passed over a Unix socket), reads what the environment decides at
import again (`qwex_core.timings`), and runs `qwex`'s own `main()`: a process of its own with
its own pid, exit code and pipes, as the console script would be. What it cannot be is a
different interpreter (`PYTHON*` variables other than those the tests started with, but for
PYTHONPATH, whose folders the child puts on its path as the interpreter would): those
commands start the console script as usual. The full suite (`nox -s tests`, CI) always
starts the console script.

Opt in with `QWEX_TESTS_WARM_CLI=1` (the `unit` session sets it).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ENABLED = os.environ.get("QWEX_TESTS_WARM_CLI") == "1"
_STARTED_ENV = dict(os.environ)
"""The environment as this process started (a test may set PYTHONPATH or QWEX_* since)."""
_INTERPRETER_ENV = {
    name: value for name, value in _STARTED_ENV.items() if name.startswith("PYTHON")
}
_warm: _Warm | None = None


def usable(env: dict[str, str]) -> bool:
    """Whether a forked child is the same as the console script would be with `env`: the
    interpreter's own variables are those this process started with, so its `sys.path`,
    bytecode and I/O settings are the script's."""
    if not ENABLED:
        return False
    asked = {n: v for n, v in env.items() if n.startswith("PYTHON") and n != "PYTHONPATH"}
    return asked == {n: v for n, v in _INTERPRETER_ENV.items() if n != "PYTHONPATH"}


def run(
    script: str, args: tuple[str, ...], cwd: Path | None, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([script, *args], capture_output=True, text=True)`, forked warm."""
    global _warm
    if _warm is None or _warm.proc.poll() is not None:
        _warm = _Warm(script)
    return _warm.run(args, cwd, env, timeout)


class _Warm:
    """The warm process and the socket commands are sent to it over."""

    def __init__(self, script: str) -> None:
        self.script = script
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        self.proc = subprocess.Popen(
            [sys.executable, __file__, script, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=_STARTED_ENV,
            cwd="/",
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        atexit.register(self.close)

    def close(self) -> None:
        """End the warm process (it leaves when the socket closes) and reap it."""
        self.sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def run(
        self, args: tuple[str, ...], cwd: Path | None, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.script, *args]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"args": list(args), "cwd": str(cwd or os.getcwd()), "env": env}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [0, out_w, err_w])
        finally:
            os.close(out_w)
            os.close(err_w)
        pid = int(self.sock.recv(64))
        try:
            out, err = _collect(out_r, err_r, timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.sock.recv(64)
            raise subprocess.TimeoutExpired(argv, timeout) from None
        code = int(self.sock.recv(64))
        return subprocess.CompletedProcess(argv, code, _text(out), _text(err))


def _collect(out_r: int, err_r: int, timeout: float) -> tuple[bytes, bytes]:
    """Both pipes read to their end (every holder of their write ends gone)."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise subprocess.TimeoutExpired("qwex", timeout)
                for key, _ in sel.select(left):
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[key.fd].append(data)
                    else:
                        sel.unregister(key.fd)
        finally:
            for fd in chunks:
                os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _text(data: bytes) -> str:
    """As `subprocess.run(text=True)` decodes (universal newlines)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


# The warm process.


def _serve(script: str, fd: int) -> None:
    """Import, then fork a child per request until the test process closes the socket."""
    sys.path[:] = _console_path(script)
    _import_everything()
    sock = socket.socket(fileno=fd)
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 22, 3)
        if not message:
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(script, request, fds)
        for passed in fds:
            os.close(passed)
        sock.send(str(pid).encode())
        _, status = os.waitpid(pid, 0)
        sock.send(str(os.waitstatus_to_exitcode(status)).encode())


def _console_path(script: str) -> list[str]:
    """The `sys.path` the console script starts with: its folder first, then the site's."""
    return [str(Path(script).parent), *(p for p in sys.path[1:])]


def _python_path(value: str, path: list[str]) -> list[str]:
    """The folders PYTHONPATH puts after the script's, as the interpreter and `site` do:
    absolute, each once, none already on `path`."""
    added: list[str] = []
    for entry in value.split(os.pathsep) if value else []:
        folder = os.path.abspath(entry)
        if folder not in path and folder not in added:
            added.append(folder)
    return added


def _import_everything() -> None:
    """What commands import, so that a child finds it imported: the libraries (pydantic's
    model machinery is not in `import pydantic`, which is lazy), qwex-core's modules, and the
    module each installed backend registers through its entry point."""
    import importlib
    import pkgutil

    import click  # noqa: F401
    import pluggy  # noqa: F401
    import pydantic.main
    import pydantic.types  # noqa: F401
    import qwex_core

    # Every module of core but its pytest plugin and its entry script (which runs the agent).
    for module in pkgutil.walk_packages(qwex_core.__path__, "qwex_core."):
        if ".testing" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    from qwex_core.plugin.discovery import entry_points

    for entry_point in entry_points("qwex"):
        with contextlib.suppress(Exception):  # the child reports it, as the script would
            importlib.import_module(entry_point.value.partition(":")[0])


def _child(script: str, request: dict[str, Any], fds: list[int]) -> None:
    code = 1
    try:
        for target, passed in enumerate(fds):
            os.dup2(passed, target)
        os.closerange(3, 65536)  # as subprocess's close_fds: the warm process's socket too
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [script, *request["args"]]
        sys.path[1:1] = _python_path(request["env"].get("PYTHONPATH", ""), sys.path)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        import importlib

        import qwex_core.timings

        importlib.reload(qwex_core.timings)  # it reads QWEX_TIMINGS when imported
        from qwex_core.cli import main

        code = main()  # exits the process itself (os._exit) after flushing
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the exit code says what happened
                stream.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]))
