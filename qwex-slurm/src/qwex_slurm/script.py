"""From a run to its Slurm job: the batch script and the sbatch options.

Pure functions of the run, the settings and a few facts about this machine, so what qwex
asks Slurm for is read (and tested) in one place. The batch script checks that the node
sees the run folder and the agent, waits for any qwex process writing the run's record,
then becomes the agent (`exec`), which runs the command and writes the record itself.
"""

from __future__ import annotations

import base64
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

from qwex_core.agent.main import command_line
from qwex_core.models import Run
from qwex_core.store import LOCK_FILE

from qwex_slurm.settings import SlurmSettings

JOB_ID_FILE = "slurm-job-id"
"""In the run folder: the id sbatch gave the run's job (every qwex process finds it there)."""
SCRIPT_FILE = "slurm-job.sh"
"""In the run folder: the batch script as submitted, for the curious."""
AGENT_LOG = "slurm-agent.log"
"""In the run folder: what the batch step itself printed (the agent's own messages)."""
NO_RUN_DIR = 97
NO_AGENT = 98
"""The batch script's exit codes when the node lacks the run folder or the agent (status.py)."""
MARK = "qwex"
"""First field of the job's comment: `qwex:RUN_ID:OWNER:PROJECT:RUN_DIR` (the paths in
unpadded URL-safe base64): what `qwex gc` proves a job is this project's by."""


@dataclass(frozen=True)
class Facts:
    """What the job needs to know of this machine: where the run lives and the agent is."""

    project_dir: Path
    run_dir: Path
    agent_dir: Path
    loader: str
    """The bundle's glibc loader (lib/ld-*.so), which starts the agent wherever it lies."""
    owner: str


def comment(run: Run, facts: Facts) -> str:
    """The job's comment naming its run and proving its project (`MARK`)."""
    paths = (_b64(str(facts.project_dir)), _b64(str(facts.run_dir)))
    return ":".join((MARK, run.id, facts.owner, *paths))


def parse_comment(text: str) -> tuple[str, str, str, str] | None:
    """(run id, owner, project, run folder) of a job qwex submitted, else None."""
    parts = text.strip().split(":")
    if len(parts) != 5 or parts[0] != MARK:
        return None
    try:
        project, run_dir = (_unb64(p) for p in parts[3:])
    except ValueError:
        return None
    return parts[1], parts[2], project, run_dir


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def script(run: Run, facts: Facts) -> str:
    """The batch script: checks, the barrier, then `exec` the agent with the command."""
    bundle = facts.agent_dir
    agent = command_line(
        (f"{bundle}/lib/{facts.loader}", f"{bundle}/bin/qwex"),
        run_dir=str(facts.run_dir),
        grace=run.spec.grace_period,
        command=run.spec.command,
    )
    run_dir = shlex.quote(str(facts.run_dir))
    launcher = shlex.quote(f"{bundle}/bin/qwex")
    lock = shlex.quote(f"{facts.run_dir}/{LOCK_FILE}")
    return "\n".join(
        [
            "#!/bin/sh",
            f"# qwex run {run.id}: this batch step becomes the qwex agent (docs/slurm.md).",
            f"[ -d {run_dir} ] && [ -w {run_dir} ] || exit {NO_RUN_DIR}",
            f"exec >>{shlex.quote(f'{facts.run_dir}/{AGENT_LOG}')} 2>&1",
            f"[ -x {launcher} ] || {{ echo 'qwex: no agent at '{launcher}; exit {NO_AGENT}; }}",
            "# Wait while a qwex process records the job queued (it holds the run's lock).",
            f"if command -v flock >/dev/null; then flock {lock} true; fi",
            "exec " + shlex.join(agent),
            "",
        ]
    )


def sbatch_options(run: Run, settings: SlurmSettings, facts: Facts) -> list[str]:
    """sbatch's options for the run: its name, marker, resources and the section's keys."""
    spec = run.spec
    res = spec.resources
    options = [
        f"--job-name=qwex-{spec.name or run.id}",
        f"--comment={comment(run, facts)}",
        "--output=/dev/null",
        "--error=/dev/null",
        f"--chdir={facts.project_dir / (spec.workdir or '.')}",
        # One run, one attempt: a requeued job would find the run's record final and stop.
        "--no-requeue",
    ]
    for key in ("partition", "account", "qos", "time", "constraint"):
        value = getattr(settings, key)
        if value:
            options.append(f"--{key}={value}")
    if res.cpu is not None:
        options.append(f"--cpus-per-task={max(1, math.ceil(res.cpu))}")
    if res.memory_bytes is not None:
        options.append(f"--mem={max(1, math.ceil(res.memory_bytes / 2**20))}M")
    if res.gpu:
        options.append(f"--gpus={res.gpu}")
    return [*options, *settings.sbatch_options]
