"""`qwex run --local [--run-dir DIR] [--grace SECONDS] [--quiet] [--snapshot FILE]
[--workdir DIR] [--termination-log FILE] [--cgroup DIR]... -- CMD ARGS...`, and the frozen agent's `qwex agent copy DEST`.

The agent's command line, parsed by hand to keep start-up fast. It is the
same whether it runs as `qwex run --local` on a laptop, as the frozen
`/qwex/bin/qwex` inside a container or pod, or as `python -m qwex_core.agent`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

USAGE = """\
usage: qwex run --local [--run-dir DIR] [--grace SECONDS] [--quiet] [--snapshot FILE]
                        [--workdir DIR] [--termination-log FILE] [--secret-env FILE]
                        [--cgroup DIR]... [--] COMMAND [ARGS]...

Run COMMAND right here under the qwex agent: its output goes to the run's log
files (and through to this terminal unless --quiet), its run record is kept in
DIR (default: a new run in the project's .qwex/runs/), SIGINT/SIGTERM are
forwarded to it and it is killed after the grace period (default 10 s).
--snapshot unpacks a project snapshot (tar.gz) into the working directory
first; --workdir then starts COMMAND in that folder of it (no shell needed);
--termination-log also writes the final record there as JSON of at most 4 KiB
(Kubernetes reads /dev/termination-log); --secret-env reads a JSON object of
environment variables, deletes the file and gives them to COMMAND; --cgroup (once per
folder) puts COMMAND in that cgroup before it runs, and removes the folder, with
whatever is left in it, when the run ends.
Exits with the command's exit code (128+N when killed by signal N); with
--termination-log, a command's own exit code 125 (recorded as such) makes the
agent exit 1, so that 125 always means the agent could not run the command.
"""

COPY_VERB = ["agent", "copy"]
"""`<launcher> agent copy DEST` (frozen agent only) copies the whole agent bundle, the
directory above the running `bin/qwex`, into DEST with its modes, through DEST/.tmp and
renames (`bin/` last, so DEST/bin/qwex never exists half-copied); exits 0, or 125 with a
one-line reason on stderr.

On Kubernetes the init container of the agent image (`qwex_core.agent.image_name()`)
runs `["/qwex/bin/qwex", "agent", "copy", "/qwex-install"]` (`copy_command(("/qwex/bin/qwex",),
"/qwex-install")`) with an emptyDir mounted at /qwex-install; the main container mounts
the same emptyDir at /qwex (the bundle's loader path is fixed there) and runs
`command_line(("/qwex/bin/qwex",), ...)`."""

VALUED = ("--run-dir", "--grace", "--snapshot", "--workdir", "--termination-log", "--secret-env")
REPEATED = ("--cgroup",)


class UsageError(Exception):
    pass


class Options:
    """The agent's options as `parse` read them (a plain class: `typing` costs the agent
    a few milliseconds to import, on every run)."""

    __slots__ = (
        "cgroups",
        "command",
        "grace",
        "quiet",
        "run_dir",
        "secret_env",
        "snapshot",
        "termination_log",
        "workdir",
    )

    def __init__(
        self,
        *,
        run_dir: str | None,
        grace: float,
        quiet: bool,
        command: list[str],
        snapshot: str | None = None,
        termination_log: str | None = None,
        workdir: str | None = None,
        secret_env: str | None = None,
        cgroups: list[str] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.cgroups = cgroups or []
        self.grace = grace
        self.quiet = quiet
        self.command = command
        self.snapshot = snapshot
        self.termination_log = termination_log
        self.workdir = workdir
        self.secret_env = secret_env


def parse(argv: list[str]) -> Options:
    """Split the agent's own options from the command; `argv` starts after `run --local`."""
    values: dict[str, str] = {}
    repeated: dict[str, list[str]] = {name: [] for name in REPEATED}
    quiet = False
    args = list(argv)
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        if opt == "--":
            break
        name, _, inline = opt.partition("=")
        if name in VALUED:
            if not inline and not args:
                raise UsageError(f"{name} needs a value")
            values[name] = inline or args.pop(0)
        elif name in REPEATED:
            if not inline and not args:
                raise UsageError(f"{name} needs a value")
            repeated[name].append(inline or args.pop(0))
        elif opt == "--quiet":
            quiet = True
        elif opt in ("-h", "--help"):
            raise UsageError("")
        else:
            raise UsageError(f"unknown agent option {opt}")
    grace_text = values.get("--grace") or os.environ.get("QWEX_GRACE_PERIOD", "10")
    try:
        grace = float(grace_text)
    except ValueError:
        raise UsageError(f"--grace expects seconds, got {grace_text!r}") from None
    if not args:
        raise UsageError("no command given")
    return Options(
        run_dir=values.get("--run-dir"),
        grace=grace,
        quiet=quiet,
        command=args,
        snapshot=values.get("--snapshot"),
        termination_log=values.get("--termination-log"),
        workdir=values.get("--workdir"),
        secret_env=values.get("--secret-env"),
        cgroups=repeated["--cgroup"],
    )


def command_line(
    launcher: Sequence[str],
    *,
    run_dir: str,
    grace: float,
    command: Sequence[str],
    quiet: bool = True,
    snapshot: str | None = None,
    termination_log: str | None = None,
    workdir: str | None = None,
    secret_env: str | None = None,
    cgroups: Sequence[str] = (),
) -> list[str]:
    """The agent's command line as `parse` reads it: `launcher` is how to call the
    agent where it runs (`python -m qwex_core.agent`, the mounted `/qwex/bin/qwex`).

    `quiet=False` also passes the command's output through to the agent's own stdout and
    stderr (a pod's log); `snapshot` is a tar.gz the agent unpacks into its working
    directory before the command starts, `workdir` the folder of it the command starts in;
    `termination_log` gets the final record; `secret_env` is a JSON file of environment the
    agent reads, deletes and gives the command (so that a container's own environment holds
    no secret value); `cgroups` are the run's own cgroup folders the agent puts the command
    in (and removes at the end)."""
    return [
        *launcher,
        "run",
        "--local",
        "--run-dir",
        run_dir,
        *(["--quiet"] if quiet else []),
        "--grace",
        f"{grace:g}",
        *(["--snapshot", snapshot] if snapshot is not None else []),
        *(["--workdir", workdir] if workdir is not None else []),
        *(["--termination-log", termination_log] if termination_log is not None else []),
        *(["--secret-env", secret_env] if secret_env is not None else []),
        *(arg for folder in cgroups for arg in ("--cgroup", folder)),
        "--",
        *command,
    ]


def load_secret_env(path: str) -> None:
    """Read a JSON object of environment variables into this process's environment (the
    command inherits it), then delete the file: its values are read once and kept nowhere."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            values = json.load(fh)
    finally:
        try:  # noqa: SIM105 - the agent imports as little as it can (contextlib)
            os.unlink(path)
        except OSError:
            pass
    if not isinstance(values, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    for name, value in values.items():
        os.environ[str(name)] = str(value)


def copy_command(launcher: Sequence[str], dest: str) -> list[str]:
    """The command that copies the agent bundle into `dest` (see `COPY_VERB`)."""
    return [*launcher, *COPY_VERB, dest]


def main(argv: list[str] | None = None) -> int:
    """Entry point; `argv` is what follows `run --local`."""
    from qwex_core.agent.supervisor import Supervisor

    given = sys.argv[3:] if argv is None else argv
    if given[:1] == ["--workers"]:  # a run's workers, as the agent's command (local, docker)
        from qwex_core.agent.gang import main as gang_main

        return gang_main(given)
    try:
        opts = parse(given)
    except UsageError as exc:
        sys.stderr.write(USAGE + (f"\nqwex: error: {exc}\n" if str(exc) else ""))
        return 2 if str(exc) else 0
    if opts.secret_env is not None:
        try:
            load_secret_env(opts.secret_env)
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"qwex: error: cannot read the secret environment: {exc}\n")
            return 125
    run_dir = opts.run_dir
    if run_dir is None:
        from qwex_core.paths import find_project_dir, runs_dir
        from qwex_core.run_index import new_run_folder

        root = runs_dir(find_project_dir())
        os.makedirs(root, exist_ok=True)
        run_dir = str(root / new_run_folder(root))
    return Supervisor(
        run_dir=run_dir,
        command=opts.command,
        grace=opts.grace,
        passthrough=not opts.quiet,
        snapshot=opts.snapshot,
        termination_log=opts.termination_log,
        workdir=opts.workdir,
        cgroups=opts.cgroups,
    ).run()
