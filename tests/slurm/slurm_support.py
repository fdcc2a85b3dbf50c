"""What the Slurm tests ask the cluster directly, beside qwex."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from qwex_slurm.commands import Slurm
from qwex_slurm.script import JOB_ID_FILE
from qwex_slurm.status import state_of

SLURM = Slurm(30)


def job_id(run_dir: Path) -> str:
    """The Slurm job id qwex recorded for a run, waiting briefly for sbatch to give it."""
    for _ in range(100):
        path = run_dir / JOB_ID_FILE
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"no Slurm job id in {run_dir}")


def job_state(job: str) -> str:
    """The job's state as slurmctld shows it ("" once it forgot the job)."""
    shown = SLURM.job(job)
    return "" if shown is None else state_of(shown)


def wait_state(job: str, states: set[str], timeout: float) -> dict[str, str]:
    """The job as scontrol shows it once its state is one of `states`."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        shown = SLURM.job(job)
        seen = "" if shown is None else state_of(shown)
        if shown is not None and seen in states:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"Slurm job {job} stayed {seen!r}, expected one of {sorted(states)}")


def scancel(job: str) -> None:
    subprocess.run(["scancel", job], capture_output=True, timeout=30)
