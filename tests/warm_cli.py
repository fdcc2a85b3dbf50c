"""The fast loop's way to start `qwex`: a child forked from the test process, which has the
libraries every command imports (click, pluggy, pydantic's model machinery) loaded already.

Why: the fast loop (`nox -s unit`) starts the real CLI some 700 times, and each start spent
most of its CPU importing those libraries again (about 0.1 s of the 0.12 s of a `qwex status`,
0.2 s of the 0.37 s of a local `qwex run`, measured with `getrusage` over the children). The
forked child is still a process of its own with its own pid, exit code, working directory,
environment and pipes, and runs `qwex`'s own `main()` from a clean slate: every qwex module
and every module the tests loaded is dropped from it first, and imported afresh from the path
a console script has, so no state of the test process reaches the command. What it cannot
give is a different interpreter (`PYTHON*` variables): for those the console script is run
as usual. The full suite (`nox -s tests`, CI) always runs the console script.

Opt in with `QWEX_TESTS_WARM_CLI=1` (the `unit` session sets it).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path

ENABLED = os.environ.get("QWEX_TESTS_WARM_CLI") == "1"
PRELOADED = (
    "click",
    "pluggy",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
)
"""Top-level packages kept in the child: they hold no state a command or a test changes."""
_CONSOLE_PATH: list[str] | None = None
_INTERPRETER_ENV = {name: value for name, value in os.environ.items() if name.startswith("PYTHON")}
"""The interpreter's variables as this process started (a test may set PYTHONPATH since)."""


def usable(env: Mapping[str, str]) -> bool:
    """Whether a forked child is the same as the console script would be with `env`: the
    interpreter's own variables are those this process started with, so its `sys.path`,
    bytecode and I/O settings are the script's."""
    if not ENABLED:
        return False
    return {n: v for n, v in env.items() if n.startswith("PYTHON")} == _INTERPRETER_ENV


def run(
    script: str, args: tuple[str, ...], cwd: Path | None, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run([script, *args], capture_output=True, text=True)`, forked."""
    _preload()
    console_path = _console_path(script)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _child(script, args, cwd, env, console_path, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    out, err, status = _collect(pid, out_r, err_r, timeout, [script, *args])
    code = os.waitstatus_to_exitcode(status)
    return subprocess.CompletedProcess([script, *args], code, _text(out), _text(err))


def _preload() -> None:
    # `import pydantic` alone is lazy: its model machinery is in these modules.
    import click  # noqa: F401
    import pluggy  # noqa: F401
    import pydantic.main
    import pydantic.types  # noqa: F401


def _console_path(script: str) -> list[str]:
    """The `sys.path` the console script starts with (its folder first, then the site's)."""
    global _CONSOLE_PATH
    if _CONSOLE_PATH is None:
        probe = [sys.executable, "-c", "import sys, json; print(json.dumps(sys.path[1:]))"]
        rest = json.loads(subprocess.run(probe, capture_output=True, check=True).stdout)
        _CONSOLE_PATH = [str(Path(script).parent), *rest]
    return _CONSOLE_PATH


def _child(
    script: str,
    args: tuple[str, ...],
    cwd: Path | None,
    env: dict[str, str],
    console_path: list[str],
    out_w: int,
    err_w: int,
) -> None:
    code = 1
    try:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 65536)  # what subprocess's close_fds does: the test process's own files
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as Python starts
        signal.setitimer(signal.ITIMER_REAL, 0)
        if cwd is not None:
            os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.path[:] = console_path
        sys.argv = [script, *args]
        _forget_modules()
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(
            io.FileIO(2, "w", closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
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


def _forget_modules() -> None:
    """Drop every module not in the standard library or PRELOADED: qwex's, the tests', and
    any plugin's are imported afresh, as in a new process."""
    stdlib = Path(os.__file__).parent
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in PRELOADED:
            continue
        where = getattr(module, "__file__", None)
        if where is None or (Path(where).is_relative_to(stdlib) and "site-packages" not in where):
            continue
        del sys.modules[name]


def _collect(
    pid: int, out_r: int, err_r: int, timeout: float, argv: list[str]
) -> tuple[bytes, bytes, int]:
    """Both pipes read to their end and the child reaped, or the child killed at `timeout`."""
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                for fd in chunks:
                    os.close(fd)
                raise subprocess.TimeoutExpired(argv, timeout)
            for key, _ in sel.select(left):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
                    os.close(key.fd)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r]), status


def _text(data: bytes) -> str:
    """As `subprocess.run(text=True)` decodes (universal newlines)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")
