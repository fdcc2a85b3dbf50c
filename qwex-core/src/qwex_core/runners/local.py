"""The local runner: the agent as a detached process on this machine.

The agent starts in a new session, so it survives the CLI (SIGKILL included)
and Ctrl-C in the terminal reaches only the CLI, which then cancels the run
on purpose. `agent.pid` in the run folder (pid and kernel start time) lets
any other qwex process find the agent, tell whether it is alive, and signal it.

Resources: `cpu` and `memory` go into a cgroup made for the run where this machine
lets this user make one (`runners.cgroups`; its folders are kept in the record's
`backend_data["cgroups"]`), the agent puts the command in it and removes it at the end;
`resource_notes` says which cannot be enforced and why. `gpu` picks devices by
`CUDA_VISIBLE_DEVICES` (`runners.gpus`); more than there are is an error.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from qwex_core.agent import cgroup
from qwex_core.agent.main import command_line
from qwex_core.errors import BackendError, SpecError
from qwex_core.lifecycle import Probe, Seen
from qwex_core.runners import cgroups, gpus, procs
from qwex_core.runners.base import LOCAL_LAUNCHER, Runner
from qwex_core.store import short_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    from qwex_core.config import QwexConfig
    from qwex_core.models import JobSpec, Run
    from qwex_core.store import RunStore

AGENT_PID_FILE = "agent.pid"
APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


class LocalRunner(Runner):
    accepts_secret_env = True
    """Secret env goes into the agent's process environment only (readable by its own user)."""
    runs_workers = True
    """`--nodes` and `--array`: the agent's command starts the workers here (`agent.gang`)."""

    def __init__(self, *, name: str, store: RunStore, config: QwexConfig) -> None:
        super().__init__(name=name, store=store, config=config)
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def validate(self, spec: JobSpec) -> None:
        if spec.workdir and not os.path.isdir(self.store.project_dir / spec.workdir):
            raise SpecError(f"workdir {spec.workdir} is not a directory on this machine")
        if spec.mounts:
            raise SpecError(
                f"the {self.name} backend runs no container, so it cannot mount "
                f"{spec.mounts[0].source}; use a container backend (--backend docker)"
            )
        if spec.resources.gpu:
            try:
                gpus.select(spec.resources.gpu, {**os.environ, **spec.env})
            except gpus.NotEnoughGpus as exc:
                raise SpecError(str(exc)) from None

    def resource_notes(self, spec: JobSpec) -> list[str]:
        """One line per reason a `cpu` or `memory` limit of `spec` cannot be enforced here
        (no cgroup file system, not writable by this user...); none when all can."""
        request = _request(spec)
        return cgroups.notes(request, cgroups.plan(request))

    def agent_command(
        self, run: Run, *, launcher: Sequence[str] = LOCAL_LAUNCHER, run_dir: str | None = None
    ) -> list[str]:
        """The base command line, with the run's own cgroups for the agent to put it in."""
        from qwex_core.workers import agent_workers_command

        folder = run_dir or str(self.store.run_dir(run.id))
        return command_line(
            launcher,
            run_dir=folder,
            grace=run.spec.grace_period,
            command=agent_workers_command(LOCAL_LAUNCHER, folder, run.spec),
            cgroups=_cgroups(run),
        )

    def launcher(self, run: Run) -> list[str]:
        """How to call the agent; a subclass may wrap it (`nice`, `taskset`, `systemd-run`)."""
        return list(LOCAL_LAUNCHER)

    def start(self, run: Run) -> None:
        run_dir = self.store.run_dir(run.id)
        env = {**os.environ, **run.spec.env, **run.spec.secret_env, "QWEX_RUN_ID": run.id}
        if run.spec.resources.gpu is not None:
            try:
                env[gpus.VARIABLE] = gpus.select(run.spec.resources.gpu, env)
            except gpus.NotEnoughGpus as exc:
                raise BackendError(str(exc)) from None
        self._make_cgroups(run)
        workdir = self.store.project_dir / (run.spec.workdir or ".")
        with open(os.open(run_dir / "agent.log", APPEND, 0o644), "ab") as agent_log:
            try:
                proc = subprocess.Popen(
                    self.agent_command(run, launcher=self.launcher(run)),
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=agent_log,
                    start_new_session=True,
                )
            except OSError as exc:
                cgroup.remove(_cgroups(run))
                raise BackendError(
                    f"cannot start the agent in {workdir}: {exc.strerror or exc}"
                ) from None
        self._children[run.id] = proc
        pid_file = os.open(run_dir / AGENT_PID_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(pid_file, f"{proc.pid} {procs.start_time(proc.pid) or 0}\n".encode())
        os.close(pid_file)

    def _make_cgroups(self, run: Run) -> None:
        """Make the run's cgroups and keep their folders in its record before the agent
        starts (what cannot be made after all is said on stderr, the run goes on)."""
        request = _request(run.spec)
        if not request.controllers():
            return
        plan = cgroups.plan(request)
        said = set(cgroups.notes(request, plan))  # by `qwex run`, before it started the run
        made = cgroups.make(plan, f"qwex-run-{short_id(run.id)}")
        for line in cgroups.notes(request, plan):
            if line not in said:
                sys.stderr.write(f"qwex: {line}\n")
        if made:
            run.backend_data["cgroups"] = made
            self.store.save(run)

    def _agent(self, run: Run) -> tuple[int, int] | None:
        """The agent's pid and kernel start time, once it was started."""
        try:
            pid, started = (self.store.run_dir(run.id) / AGENT_PID_FILE).read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid), int(started)

    def probe(self, run: Run) -> Probe:
        agent = self._agent(run)
        if agent is None:
            return Probe(Seen.NOTHING)
        what = f"the agent (pid {agent[0]})"
        child = self._children.get(run.id)
        alive = child.poll() is None if child is not None else procs.is_running(*agent)
        if alive:
            return Probe(Seen.ALIVE, what)
        leftovers = run.pid is not None and procs.start_time(run.pid) is not None
        return Probe(Seen.EXITED, what, leftovers=leftovers)

    def signal(self, run: Run, signum: int) -> None:
        """The agent forwards SIGINT/SIGTERM to the command; SIGKILL stops both process
        groups (the agent's session and the command's own group) at once."""
        agent = self._agent(run)
        if agent is not None and procs.is_running(*agent):
            if signum == signal.SIGKILL:
                procs.kill_group(agent[0])
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent[0], signum)
        if signum == signal.SIGKILL and run.pid is not None:
            procs.kill_group(run.pid)
        if signum == signal.SIGKILL:
            cgroup.kill_all(_cgroups(run))

    def wait_for_change(self, run: Run, seconds: float) -> None:
        child = self._children.get(run.id)
        if child is None:
            super().wait_for_change(run, seconds)
            return
        procs.wait_for_exit(child, seconds)

    def cleanup(self, run: Run) -> None:
        """Wait for our agent child; remove the run's cgroups if its agent could not (it
        was killed): whatever is still in them is killed first."""
        child = self._children.pop(run.id, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        cgroup.remove(_cgroups(run))


def _request(spec: JobSpec) -> cgroups.Request:
    resources = spec.resources
    return cgroups.Request(
        cpu=resources.cpu, memory=resources.memory_bytes, memory_text=resources.memory
    )


def _cgroups(run: Run) -> list[str]:
    """The run's own cgroup folders, as `start` recorded them."""
    found = run.backend_data.get("cgroups") or []
    return [str(folder) for folder in found if isinstance(folder, str)]
