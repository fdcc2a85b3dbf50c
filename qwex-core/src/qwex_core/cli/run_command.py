"""`qwex run`: start a command on a backend, follow it, exit with its code."""

from __future__ import annotations

import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from qwex_core.cli.completion import complete_backends, complete_profiles
from qwex_core.cli.output import (
    INTERRUPTED,
    TERMINATED,
    Terminated,
    emit_json,
    note,
    run_json,
)
from qwex_core.errors import QwexError
from qwex_core.plugin.manager import unknown_backend
from qwex_core.run_view import RunView
from qwex_core.store import check_name, short_id
from qwex_core.timings import mark

if TYPE_CHECKING:
    from qwex_core.cli.context import State
    from qwex_core.models import JobSpec, Run
    from qwex_core.service import RunService


def _check_name(name: str | None) -> str | None:
    """A `--name` that can name a run (a usage error otherwise)."""
    if name is None:
        return None
    try:
        return check_name(name)
    except QwexError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None


def _check_array(value: str | None) -> str | None:
    """An `--array` that is FIRST-LAST[%LIMIT] (a usage error otherwise)."""
    if value is not None:
        from qwex_core.models import ArraySpec

        try:
            ArraySpec.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--array") from None
    return value


def _stdin_has_input() -> bool:
    """Whether something was piped or redirected into qwex (`echo x | qwex run ...`): bytes
    already waiting in a pipe or socket, or a non-empty file. An idle pipe, a terminal or
    /dev/null is not."""
    import stat

    try:
        fd = sys.stdin.fileno()
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            return info.st_size > 0
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            import fcntl
            import struct
            import termios

            waiting = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
            return bool(struct.unpack("i", waiting)[0])
    except (AttributeError, ValueError, OSError):
        pass
    return False


def _check_memory(value: str | None) -> str | None:
    """A `--memory` that is a memory size (a usage error otherwise)."""
    if value is not None:
        from qwex_core.models import parse_memory

        try:
            parse_memory(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--memory") from None
    return value


def _env(values: tuple[str, ...]) -> dict[str, str]:
    """`-e KEY=VALUE`, or `-e KEY` for this shell's value of KEY (as `docker run -e`): a KEY
    not set here is left out, with a note naming it."""
    out = {}
    for item in values:
        if "=" in item or not item:
            out.update(_pairs((item,), "--env"))
        elif item in os.environ:
            out[item] = os.environ[item]
        else:
            note(f"-e {item}: {item} is not set in this shell; the run does not get it")
    return out


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        out[key] = value
    return out


def _secrets(values: tuple[str, ...]) -> dict[str, str]:
    """`--secret NAME[=ENVVAR]` as env var -> secret name."""
    out = {}
    for item in values:
        name, sep, var = item.partition("=")
        if not name or (sep and not var):
            raise click.BadParameter(f"{item!r} is not NAME or NAME=ENVVAR", param_hint="--secret")
        out[var or name] = name
    return out


@click.command(context_settings={"allow_interspersed_args": False})
@click.option(
    "-b",
    "--backend",
    shell_complete=complete_backends,
    help="Backend to run on (see `qwex backends`); default from config, else local.",
)
@click.option(
    "-p",
    "--profile",
    shell_complete=complete_profiles,
    help="Named profile from [tool.qwex.profiles.NAME].",
)
@click.option("-d", "--detach", is_flag=True, help="Print the run's short id and return at once.")
@click.option("--no-trunc", is_flag=True, help="Print the full run id (with -d, and in messages).")
@click.option("--image", help="Container image (container backends).")
@click.option(
    "-e",
    "--env",
    multiple=True,
    metavar="KEY[=VALUE]",
    help="Set an environment variable (repeatable); KEY alone passes this shell's value.",
)
@click.option(
    "--secret",
    multiple=True,
    metavar="NAME[=ENVVAR]",
    help="A secret the qwex server keeps (`qwex serve secret add NAME`), given to the command "
    "in ENVVAR (default: NAME); remote backend only (repeatable).",
)
@click.option("--cpu", type=float, help="CPU cores to reserve, e.g. 2 or 0.5.")
@click.option(
    "--memory",
    callback=lambda _ctx, _param, value: _check_memory(value),
    help="Memory limit, e.g. 512Mi or 4Gi.",
)
@click.option("--gpu", type=int, help="Number of GPUs.")
@click.option(
    "-v", "--mount", multiple=True, metavar="SRC:DST[:ro]", help="Extra mount (container backends)."
)
@click.option(
    "-l", "--label", multiple=True, metavar="KEY=VALUE", help="Label the run (repeatable)."
)
@click.option(
    "--name",
    callback=lambda _ctx, _param, value: _check_name(value),
    help="A name for the run, usable wherever a run id is; unique among the project's runs.",
)
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False, resolve_path=True),
    help="Host directory the command starts in (default: the current one; in containers, the "
    "same place in the mounted project).",
)
@click.option(
    "--grace-period", type=float, help="Seconds from SIGTERM to SIGKILL on cancel (default 10)."
)
@click.option(
    "--pull",
    is_flag=True,
    default=None,
    help="Pull the image even if present (container backends).",
)
@click.option("--queue", help="Queue to wait in (k8s: a Kueue LocalQueue).")
@click.option("--partition", help="Partition to submit to (slurm).")
@click.option(
    "--time",
    "time_limit",
    metavar="LIMIT",
    help="Time limit, e.g. 30, 01:00:00 or 2-00:00:00 (slurm).",
)
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    help="Run COMMAND on N workers together, one run (k8s: an Indexed Job, one pod each; "
    "local, docker: N processes or containers here), each with MASTER_ADDR, MASTER_PORT, "
    "WORLD_SIZE, RANK, NODE_RANK, LOCAL_WORLD_SIZE and torchrun's PET_* set.",
)
@click.option(
    "--procs-per-node",
    type=click.IntRange(min=1),
    help="Processes per worker that the command's launcher starts (torchrun's "
    "--nproc-per-node): sets LOCAL_WORLD_SIZE and WORLD_SIZE = nodes x this.",
)
@click.option(
    "--array",
    metavar="FIRST-LAST[%LIMIT]",
    callback=lambda _ctx, _param, value: _check_array(value),
    help="Run COMMAND once per index (QWEX_ARRAY_INDEX), at most LIMIT at once, as one run "
    "with a task per index: 0-99%10.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the run and print what its backend would create (a Kubernetes Job's "
    "manifest...), without creating anything.",
)
@click.option(
    "--priority",
    metavar="NAME",
    help="Priority in the queue (k8s: a Kueue WorkloadPriorityClass; needs --queue).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run record as JSON (at once with -d, else at the end): the only thing on "
    "stdout; the command's output goes to stderr.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Do not print the command's output (it is still recorded: `qwex logs RUN`).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Be the agent: run COMMAND right here and record it "
    "(`qwex run --local --help`); must come first.",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def run(
    state: State,
    backend: str | None,
    profile: str | None,
    detach: bool,
    no_trunc: bool,
    image: str | None,
    env: tuple[str, ...],
    secret: tuple[str, ...],
    cpu: float | None,
    memory: str | None,
    gpu: int | None,
    mount: tuple[str, ...],
    label: tuple[str, ...],
    name: str | None,
    workdir: str | None,
    grace_period: float | None,
    pull: bool | None,
    queue: str | None,
    nodes: int | None,
    procs_per_node: int | None,
    array: str | None,
    priority: str | None,
    partition: str | None,
    time_limit: str | None,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    local: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND and follow its output; exit with its exit code.

    \b
      qwex run -- python train.py --epochs 3
      qwex run "python script.py"            one string with spaces runs in /bin/sh -c
      qwex run -d -b docker --image python:3.11 -- python train.py

    Ctrl-C cancels the run (the command gets SIGINT, then SIGKILL after the
    grace period); a second Ctrl-C kills it at once. SIGTERM (`timeout 60 qwex
    run ...`) cancels it too (the command gets SIGTERM) and exits 143. A closed
    terminal (SIGHUP) or a closed output pipe (`qwex run ... | head`) stops
    following only: the run goes on, `qwex logs -f RUN` re-attaches from any
    shell. Stdin is not forwarded: the command reads an empty stdin.

    Before COMMAND, an argument starting with `-` is one of qwex's options (a misspelled
    one is an error); everything from COMMAND on, or after `--`, is the command's.
    """
    if local:
        raise click.UsageError("--local must come right after `run`: qwex run --local -- COMMAND")
    if not command[0].strip():
        raise click.UsageError("the command is empty: qwex run [OPTIONS] -- COMMAND [ARGS]...")
    from qwex_core.jobs import overrides
    from qwex_core.models import Mount

    flags = overrides(
        {
            "backend": backend,
            "image": image,
            "cpu": cpu,
            "memory": memory,
            "gpu": gpu,
            "workdir": workdir,
            "grace_period": grace_period,
            "pull": pull,
            "queue": queue,
            "priority": priority,
            "partition": partition,
            "time": time_limit,
            "env": _env(env),
            "labels": _pairs(label, "--label"),
            "secrets": _secrets(secret),
        }
    )
    try:
        mounts = [Mount.parse(text) for text in mount]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--mount") from None
    service = state.service(profile=profile, flags=flags)
    if name and (owner := service.store.name_owner(name)):
        raise QwexError(f"the name {name!r} is taken by run {short_id(owner)}; choose another")
    workers: dict[str, Any] = {
        key: value
        for key, value in (("nodes", nodes), ("procs_per_node", procs_per_node), ("array", array))
        if value is not None
    }
    spec = service.job(list(command), name=name, mounts=mounts, **workers)
    mark("job-built")
    if spec.backend not in state.host.runners:
        source = service.config.source_of(("backend",))
        raise unknown_backend(spec.backend, state.host.runners, source)
    if secret and spec.backend != "remote":
        raise click.UsageError(
            f"--secret names a secret a qwex server keeps: use it with --backend remote "
            f"(the {spec.backend} backend has no server)"
        )
    if image and not service.runner(spec.backend).uses_container:
        note(f"--image is ignored: the {spec.backend} backend runs no container")
    _note_unenforced(service, spec)
    if dry_run:
        click.echo(_dry_run(service, spec), nl=False)
        return
    if _stdin_has_input():
        note("stdin is not forwarded: the command reads an empty stdin (pass data in a file)")
    if not detach:
        # SIGTERM cancels a foreground run, as Ctrl-C does; with -d it stops nothing.
        signal.signal(signal.SIGTERM, _raise_terminated)
    held = HeldSignals()
    try:
        run_ = service.submit(spec)
    except BaseException:
        held.restore()
        raise
    if detach:
        held.restore()
        if held.caught:
            terminated = signal.SIGTERM in held.caught
            note(
                f"cancelling run {short_id(run_.id)}"
                + (" (received SIGTERM)" if terminated else "")
            )
            service.cancel(run_, interrupt=not terminated)
            raise click.exceptions.Exit(TERMINATED if terminated else INTERRUPTED)
        if as_json:
            emit_json(run_json(service.store.load(run_.id)))
        else:
            click.echo(run_.id if no_trunc else short_id(run_.id))
        return
    if not quiet:
        note(
            f"run {short_id(run_.id)} on {spec.backend}; Ctrl-C cancels, "
            f"`qwex logs -f {short_id(run_.id)}` re-attaches"
        )
    streams = () if quiet else ("stdout", "stderr")
    caught: set[int] = set()
    final = follow_run(
        service,
        run_,
        streams=streams,
        stdout_to_stderr=as_json,
        signals=caught,
        phase=not quiet,
        held=held,
    )
    terminated = signal.SIGTERM in caught
    if as_json:
        emit_json(run_json(final))
    if final.status.value != "succeeded":
        note(f"run {short_id(final.id)} {final.status.value}: {final.reason}")
    code = exit_code(final)
    if signal.SIGINT in caught and _stopped_by_qwex(final):
        code = INTERRUPTED  # as a shell says after Ctrl-C, whatever signal the backend could send
    raise click.exceptions.Exit(TERMINATED if terminated else code)


def _note_unenforced(service: RunService, spec: JobSpec) -> None:
    """One line per reason the backend cannot enforce a resource limit here (the local one:
    no cgroup it may make), instead of ignoring it without a word."""
    for line in service.runner(spec.backend).resource_notes(spec):
        note(line)


def _stopped_by_qwex(run: Run) -> bool:
    """Whether a cancelled run's command ended by a signal qwex sent, not by its own exit
    (a pod's command gets SIGTERM for Ctrl-C: Kubernetes can send no other; SIGKILL after
    the grace period or a second Ctrl-C)."""
    return run.status.value == "cancelled" and (
        run.exit_code in (None, 128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGKILL)
        or run.signal in ("SIGINT", "SIGTERM", "SIGKILL")
    )


def _dry_run(service: RunService, spec: JobSpec) -> str:
    """What `qwex run --dry-run` prints: the backend's own view of what it would create, else
    the agent's command line; checked as a real start is, with no record made."""
    import shlex

    from qwex_core.agent.record import now_iso
    from qwex_core.ids import uuid7
    from qwex_core.models import Run
    from qwex_core.service import check_workers

    runner = service.runner(spec.backend)
    service.host.prepare_job(spec, service.config)
    check_workers(spec, runner)
    runner.validate(spec)
    run_id = uuid7()
    run = Run.model_validate(
        {
            "id": run_id,
            "short_id": short_id(run_id),
            "backend": spec.backend,
            "spec": spec,
            "created_at": now_iso(),
            "history": [],
        }
    )
    text = runner.describe(run)
    if text is None:
        text = shlex.join(runner.agent_command(run)) + "\n"
    return text if text.endswith("\n") else text + "\n"


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise Terminated


class HeldSignals:
    """Ctrl-C and SIGTERM held back from the moment a run is submitted until the CLI acts on
    them: a signal during the start cancels a run that exists instead of cutting its start in
    half, and one landing after the start but before the CLI follows the run (while it prints
    its first line, say) cannot end the CLI with nobody left to cancel the run."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.caught: list[int] = []
        self._previous = {signum: signal.signal(signum, self._hold) for signum in self.SIGNALS}

    def _hold(self, signum: int, _frame: object) -> None:
        self.caught.append(signum)

    def restore(self) -> None:
        """The handlers as they were before (the held signals stay in `caught`)."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def release(self) -> None:
        """Restore the handlers, then raise a held signal as its handler would have: SIGTERM
        (`Terminated`, from the foreground run's handler) before Ctrl-C (`KeyboardInterrupt`).
        One arriving meanwhile raises by itself."""
        self.restore()
        if signal.SIGTERM in self.caught:
            signal.raise_signal(signal.SIGTERM)
        elif signal.SIGINT in self.caught:
            signal.raise_signal(signal.SIGINT)


def exit_code(run: Run) -> int:
    """The code `qwex run` and `qwex wait` exit with for a final run: its command's, else 0
    when it succeeded and 1 when not (lost, or cancelled before it started)."""
    return view_exit_code(RunView.of(run))


def view_exit_code(run: RunView) -> int:
    """`exit_code` of a run's view."""
    if run.exit_code is not None:
        return run.exit_code
    return 0 if run.status == "succeeded" else 1


def follow_run(
    service: RunService,
    run: Run,
    *,
    tail: int | None = None,
    since: int | None = None,
    timestamps: bool = False,
    streams: tuple[str, ...] = ("stdout", "stderr"),
    cancel_on_interrupt: bool = True,
    stdout_to_stderr: bool = False,
    signals: set[int] | None = None,
    phase: bool = True,
    held: HeldSignals | None = None,
) -> Run:
    """Print the run's output until it is final (stdout to stdout, or to stderr with
    `stdout_to_stderr`; stderr to stderr). Ctrl-C cancels it (twice: kills it), or with
    `cancel_on_interrupt` off, only stops following. SIGTERM (when the caller turned it into
    `Terminated`) cancels it like Ctrl-C and is added to `signals`. A closed output pipe
    stops following and raises `BrokenPipeError`; the run goes on. With `phase`, a terminal's
    stderr shows what the run waits for until it is running (see `PhaseLine`). `tail`,
    `since` and `timestamps` are those of `qwex logs`. `held`: the signals held back since
    the submit, released (and acted on) once following has begun."""
    from qwex_core.cli.terminal import PhaseLine
    from qwex_core.follow import follow
    from qwex_core.logtimes import Stamper
    from qwex_core.models import Run

    stamper = Stamper() if timestamps else None

    sinks = {
        "stdout": sys.stderr.buffer if stdout_to_stderr else sys.stdout.buffer,
        "stderr": sys.stderr.buffer,
    }
    line = PhaseLine(sys.stderr, enabled=phase)
    on_status = line.update if line.enabled else None
    offsets: dict[str, int] | None = None
    interrupts = 0
    while True:
        try:
            if held is not None:
                releasing, held = held, None
                releasing.release()
            for item in follow(
                service,
                run.id,
                streams=streams,
                offsets=offsets,
                tail=tail,
                since=since,
                on_status=on_status,
            ):
                line.stop()  # output flows, or the run has ended
                if isinstance(item, Run):
                    return item
                # Counted as shown before it is written: a Ctrl-C landing once the write is
                # done (as a person reacts to it) must not show it twice; one landing mid-write
                # may cut this chunk short on screen (it is whole in the log).
                offsets = {**(offsets or {}), item.stream: item.offset + len(item.data)}
                try:
                    sinks[item.stream].write(stamper(item) if stamper else item.data)
                    sinks[item.stream].flush()
                except BrokenPipeError:
                    if cancel_on_interrupt and not service.store.load(run.id).is_final:
                        note(
                            f"output closed: stopped following; run {short_id(run.id)} goes on "
                            f"(`qwex cancel {short_id(run.id)}` stops it)"
                        )
                    raise
        except (KeyboardInterrupt, Terminated) as exc:
            if not cancel_on_interrupt:
                line.clear()
                raise
            # A signal landing while qwex acts on this one is the next one: held, not raised
            # (raised, it could land between the note and the cancel and end the CLI).
            hold = HeldSignals()
            line.clear()
            pending: list[KeyboardInterrupt | Terminated] = [exc]
            while pending:
                exc = pending.pop(0)
                term = isinstance(exc, Terminated)
                if signals is not None:
                    signals.add(signal.SIGTERM if term else signal.SIGINT)
                interrupts += 1
                if interrupts == 1:
                    again = "SIGTERM" if term else "Ctrl-C"
                    note(f"cancelling run {short_id(run.id)} ({again} again to kill it at once)")
                elif interrupts == 2:
                    note(f"killing run {short_id(run.id)}")
                else:
                    hold.restore()
                    note(f"stopped waiting; `qwex status {short_id(run.id)}` shows how it ends")
                    raise exc
                current = service.store.load(run.id)
                if interrupts == 1:
                    service.cancel(current, interrupt=not term)
                else:  # two different signals: two SIGINTs could merge into one
                    service.kill(current)
                pending += [
                    Terminated() if n == signal.SIGTERM else KeyboardInterrupt()
                    for n in hold.caught
                ]
                hold.caught.clear()
            held = hold  # released as following resumes: one landing from here is raised there
        except BaseException:
            line.clear()
            raise
