"""Finding and cancelling Slurm jobs qwex no longer needs.

Only this user's jobs (`squeue -u`), and of them only those whose comment marks them as a
qwex run's (`script.comment`) of a project that holds the same owner token on this machine
(`qwex_core.ownership`): a teammate's job, another project's, or a job submitted by hand is
never touched. Such a job is garbage when its run is final or its record is gone; a run
that is not final is first brought up to date through its project's service.
"""

from __future__ import annotations

from qwex_core.errors import BackendError
from qwex_core.garbage import Garbage, why_removable

from qwex_slurm.commands import Slurm
from qwex_slurm.script import parse_comment
from qwex_slurm.status import ALIVE, WAITING, state_of


def collect(slurm: Slurm, *, dry_run: bool = False) -> list[Garbage]:
    """Cancel (unless `dry_run`) every marked job of ours whose run is final or unknown."""
    findings = []
    for job_id, text in slurm.my_jobs():
        marked = parse_comment(text)
        if marked is None:
            continue
        run_id, owner, project, run_dir = marked
        why = why_removable(run_dir, project, dry_run=dry_run, owner=owner)
        if why is None:
            continue
        try:
            job = slurm.job(job_id)
        except BackendError:
            continue
        if job is None or state_of(job) not in ALIVE | WAITING:
            continue  # already over: slurmctld forgets it by itself (MinJobAge)
        removed = False
        if not dry_run:
            try:
                slurm.cancel(job_id)
                removed = True
            except BackendError:
                removed = False
        findings.append(Garbage("slurm", "job", job_id, run_id, why, removed))
    return findings
