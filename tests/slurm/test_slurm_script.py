"""What the Slurm backend asks sbatch for and how it reads scontrol, without a cluster
(the fast loop runs these; tests/slurm's other modules check them on the real one)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from qwex_core.lifecycle import Seen
from qwex_core.models import JobSpec, Run
from qwex_slurm import status
from qwex_slurm.commands import parse_job
from qwex_slurm.script import Facts, comment, parse_comment, sbatch_options, script
from qwex_slurm.settings import SlurmSettings

FACTS = Facts(
    project_dir=Path("/home/ada/proj ect"),
    run_dir=Path("/home/ada/proj ect/.qwex/runs/r1"),
    agent_dir=Path("/opt/qwex/linux-amd64"),
    loader="ld-linux-x86-64.so.2",
    owner="0f" * 16,
)


def a_run(**fields: object) -> Run:
    spec = JobSpec.model_validate({"command": ["python", "train.py"], "backend": "slurm", **fields})
    return Run(id="r1", backend="slurm", spec=spec, created_at=datetime.now(UTC))


def test_resources_and_the_section_become_sbatch_options() -> None:
    run = a_run(resources={"cpu": 1.5, "memory": "16Gi", "gpu": 2})
    settings = SlurmSettings(
        partition="gpu", time="01:00:00", qos="high", sbatch_options=["--exclusive"]
    )
    options = sbatch_options(run, settings, FACTS)
    assert "--cpus-per-task=2" in options  # whole CPUs: Slurm allocates no fraction
    assert "--mem=16384M" in options
    assert "--gpus=2" in options
    assert "--partition=gpu" in options and "--time=01:00:00" in options
    assert "--qos=high" in options and "--no-requeue" in options
    assert options[-1] == "--exclusive"
    assert not any(o.startswith("--account") for o in options)


def test_the_comment_proves_the_run_and_project_and_survives_odd_paths() -> None:
    text = comment(a_run(), FACTS)
    assert " " not in text and "=" not in text
    assert parse_comment(text) == ("r1", "0f" * 16, str(FACTS.project_dir), str(FACTS.run_dir))
    assert parse_comment("some user comment") is None


def test_the_batch_script_checks_the_node_then_becomes_the_agent() -> None:
    text = script(a_run(), FACTS)
    assert text.startswith("#!/bin/sh\n")
    assert "exit 97" in text and "exit 98" in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("exec /opt/qwex/linux-amd64/lib/ld-linux-x86-64.so.2 ")
    assert "'/home/ada/proj ect/.qwex/runs/r1'" in last
    assert last.endswith("-- python train.py")


def test_a_time_limit_slurm_would_refuse_is_a_configuration_error() -> None:
    assert SlurmSettings(time="2-00:00:00").time == "2-00:00:00"
    with pytest.raises(ValidationError, match="not a Slurm time limit"):
        SlurmSettings(time="an hour")


SHOWN = (
    "JobId=12 JobName=qwex-r1 UserId=ada(1000) JobState=TIMEOUT Reason=TimeLimit "
    "Dependency=(null) ExitCode=0:15 TimeLimit=00:05:00 NodeList=n1 BatchHost=n1 "
    "Comment=qwex:r1:x:y:z Command=/home/ada/a b.sh"
)


def test_scontrols_line_and_the_end_it_means() -> None:
    job = parse_job(SHOWN)
    assert job["Command"] == "/home/ada/a b.sh"
    assert status.end_words(job) == (
        "TIMEOUT (TimeLimit): Slurm stopped the job at its time limit (00:05:00)"
    )
    seen = status.probe("12", job)
    assert (seen.seen, seen.exit_code, seen.what) == (Seen.EXITED, 0, "its Slurm job 12 on n1")


def test_a_pending_job_is_queued_in_slurms_words() -> None:
    seen = status.probe("12", parse_job("JobId=12 JobState=PENDING Reason=Priority"))
    assert (seen.seen, seen.queued) == (Seen.STARTING, "Slurm job 12 waits: Priority")
