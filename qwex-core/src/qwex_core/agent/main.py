"""`qwex run --local [--run-dir DIR] [--grace SECONDS] [--quiet] -- CMD ARGS...`

The agent's command line, parsed by hand to keep start-up fast. It is the
same whether it runs as `qwex run --local` on a laptop, as the frozen
`/qwex/bin/qwex` inside a container, or as `python -m qwex_core.agent`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

USAGE = """\
usage: qwex run --local [--run-dir DIR] [--grace SECONDS] [--quiet] [--] COMMAND [ARGS]...

Run COMMAND right here under the qwex agent: its output goes to the run's log
files (and through to this terminal unless --quiet), its run record is kept in
DIR (default: a new run in the project's .qwex/runs/), SIGINT/SIGTERM are
forwarded to it and it is killed after the grace period (default 10 s).
Exits with the command's exit code (128+N when killed by signal N).
"""


class UsageError(Exception):
    pass


def parse(argv: list[str]) -> tuple[str | None, float, bool, list[str]]:
    """Split the agent's own options from the command; `argv` starts after `run --local`."""
    run_dir: str | None = None
    grace = float(os.environ.get("QWEX_GRACE_PERIOD", "10"))
    quiet = False
    args = list(argv)
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt == "--":
            break
        name, _, inline = opt.partition("=")
        if name in ("--run-dir", "--grace"):
            if not inline and not args:
                raise UsageError(f"{name} needs a value")
            value = inline or args.pop(0)
            if name == "--run-dir":
                run_dir = value
            else:
                try:
                    grace = float(value)
                except ValueError:
                    raise UsageError(f"--grace expects seconds, got {value!r}") from None
        elif opt == "--quiet":
            quiet = True
        elif opt in ("-h", "--help"):
            raise UsageError("")
        else:
            raise UsageError(f"unknown agent option {opt}")
    if not args:
        raise UsageError("no command given")
    return run_dir, grace, quiet, args


def command_line(
    launcher: Sequence[str], *, run_dir: str, grace: float, command: Sequence[str]
) -> list[str]:
    """The agent's command line as `parse` reads it: `launcher` is how to call the agent
    where it runs (`python -m qwex_core.agent`, the mounted `/qwex/bin/qwex`)."""
    return [
        *launcher,
        "run",
        "--local",
        "--run-dir",
        run_dir,
        "--quiet",
        "--grace",
        f"{grace:g}",
        "--",
        *command,
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point; `argv` is what follows `run --local`."""
    from qwex_core.agent.supervisor import Supervisor

    try:
        run_dir, grace, quiet, command = parse(sys.argv[3:] if argv is None else argv)
    except UsageError as exc:
        sys.stderr.write(USAGE + (f"\nqwex: error: {exc}\n" if str(exc) else ""))
        return 2 if str(exc) else 0
    if run_dir is None:
        from qwex_core.ids import uuid7
        from qwex_core.paths import find_project_dir, runs_dir

        run_dir = str(runs_dir(find_project_dir()) / uuid7())
    return Supervisor(run_dir=run_dir, command=command, grace=grace, passthrough=not quiet).run()
