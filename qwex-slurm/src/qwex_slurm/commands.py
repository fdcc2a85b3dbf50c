"""Slurm's client commands, the backend's only way to the cluster.

`sbatch`, `scontrol`, `scancel`, `squeue` (and `sacct` where accounting is set up) are what
every Slurm site has and what its users already trust; no Slurm Python binding is kept up to
date with the daemons as they are. Each call is one process, bounded by a timeout, and turns
a failure into a `BackendError` that says what Slurm answered.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from qwex_core.errors import BackendError

UNKNOWN_JOB = "Invalid job id specified"
"""What scontrol answers for a job slurmctld no longer holds (ended over MinJobAge ago)."""
_FIELD = re.compile(r" (?=[A-Za-z][A-Za-z0-9_:/]*=)")
"""A space starting the next `Key=` of `scontrol show job -o`."""


class Slurm:
    """The cluster as this machine's Slurm client commands reach it."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout

    @staticmethod
    def installed() -> bool:
        return shutil.which("sbatch") is not None and shutil.which("scontrol") is not None

    def _run(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        # Found on this process's PATH: `env` is the job's, whose PATH may be the node's.
        program = shutil.which(args[0]) or args[0]
        try:
            return subprocess.run(
                [program, *args[1:]],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=None if env is None else dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise BackendError(
                f"{args[0]} is not installed here: the slurm backend needs Slurm's client "
                "commands (sbatch, scontrol, scancel, squeue) on this machine"
            ) from None
        except subprocess.TimeoutExpired:
            raise BackendError(
                f"{args[0]} did not answer within {self.timeout:g} s (is slurmctld up? "
                "`scontrol ping`; [tool.qwex.slurm] timeout sets the wait)"
            ) from None
        except OSError as exc:
            raise BackendError(f"cannot run {args[0]}: {exc}") from None

    def submit(self, args: Sequence[str], script: str, env: Mapping[str, str], cwd: str) -> str:
        """`sbatch ARGS SCRIPT`; the new job's id."""
        done = self._run(["sbatch", "--parsable", *args, script], env=env, cwd=cwd)
        if done.returncode != 0:
            raise BackendError(f"sbatch refused the job: {_said(done)}")
        job_id = done.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise BackendError(f"sbatch answered no job id: {_said(done)}")
        return job_id

    def job(self, job_id: str) -> dict[str, str] | None:
        """slurmctld's view of the job (`scontrol show job`), None when it holds it no more."""
        done = self._run(["scontrol", "show", "job", "-o", job_id])
        if done.returncode != 0:
            if UNKNOWN_JOB in done.stderr or UNKNOWN_JOB in done.stdout:
                return None
            raise BackendError(f"scontrol cannot show job {job_id}: {_said(done)}")
        return parse_job(done.stdout)

    def accounted(self, job_id: str) -> dict[str, str] | None:
        """The job as accounting (`sacct`) recorded it; None without accounting or record."""
        if shutil.which("sacct") is None:
            return None
        fields = "JobID,State,ExitCode,Reason"
        done = self._run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", fields])
        if done.returncode != 0 or not done.stdout.strip():
            return None
        values = done.stdout.strip().splitlines()[0].split("|")
        row = dict(zip(fields.split(","), values, strict=False))
        state, _, by = row.get("State", "").partition(" by ")
        return {
            "JobState": state,
            "ExitCode": row.get("ExitCode", ""),
            "Reason": row.get("Reason", "None"),
            "CancelledBy": by,
            "Source": "sacct",
        }

    def signal(self, job_id: str, signame: str, *, batch_only: bool) -> None:
        """`scancel --signal`: to the batch step only (the agent) or to every step."""
        scope = "--batch" if batch_only else "--full"
        self._cancel([scope, f"--signal={signame}", job_id])

    def cancel(self, job_id: str) -> None:
        """`scancel`: out of the queue, or ended (every process of it killed)."""
        self._cancel([job_id])

    def _cancel(self, args: Sequence[str]) -> None:
        done = self._run(["scancel", *args])
        text = done.stderr + done.stdout
        if done.returncode != 0 and "already completing or completed" not in text:
            if "Invalid job id" in text:
                return  # gone: nothing left to signal
            raise BackendError(f"scancel {' '.join(args)} failed: {_said(done)}")

    def my_jobs(self) -> list[tuple[str, str]]:
        """This user's jobs slurmctld holds: (job id, comment) each."""
        done = self._run(["squeue", "-h", "-u", str(os.getuid()), "-t", "all", "-o", "%i %k"])
        if done.returncode != 0:
            raise BackendError(f"squeue cannot list the jobs: {_said(done)}")
        jobs = []
        for line in done.stdout.splitlines():
            job_id, _, comment = line.strip().partition(" ")
            if job_id:
                jobs.append((job_id, comment))
        return jobs


def parse_job(text: str) -> dict[str, str]:
    """`scontrol show job -o` output (one line of `Key=Value`) as a mapping."""
    fields: dict[str, str] = {}
    for part in _FIELD.split(text.strip()):
        key, sep, value = part.partition("=")
        if sep:
            fields[key] = value
    return fields


def _said(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}"
    return " ".join(text.split())[:500]
