"""What a Slurm run shows beyond the conformance suite, on the real slurmctld: Slurm's
pending reason, its end states (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL), cancel, the agent on a
node without Python, and `qwex gc` touching only this project's jobs."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qwex_core.service import RunService
from qwex_core.testing import service_for
from qwex_slurm.status import ALIVE
from slurm_support import SLURM, job_id, job_state, scancel, wait_state

pytestmark = pytest.mark.usefixtures("slurm_cluster")
Qwex = Callable[..., subprocess.CompletedProcess[str]]
CLUSTER = Path(__file__).resolve().parents[2] / ".ci" / "slurm" / "cluster.sh"


@pytest.fixture
def service(project: Path) -> RunService:
    return service_for(project, backend="slurm")


@pytest.fixture
def jobs() -> Iterator[list[str]]:
    """Job ids a test started: cancelled after it, whatever happened."""
    started: list[str] = []
    yield started
    for job in started:
        scancel(job)


def status_of(qwex: Qwex, project: Path, run: str) -> dict[str, Any]:
    done = qwex("status", "--json", run, cwd=project, check=True)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def wait_status(
    qwex: Qwex, project: Path, run: str, statuses: set[str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        seen = status_of(qwex, project, run)
        if seen["status"] in statuses:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"run {run} stayed {seen.get('status')} ({seen.get('reason')})")


def wait_queued_for(qwex: Qwex, project: Path, run: str, why: str) -> dict[str, Any]:
    """The run once queued with Slurm's reason `why` (or as it stands 20 s later): Slurm says
    "not scheduled yet" until its scheduler has looked at the job."""
    queued = wait_status(qwex, project, run, {"queued"}, 30)
    deadline = time.monotonic() + 20
    while not queued["reason"].endswith(why) and time.monotonic() < deadline:
        time.sleep(0.3)
        queued = status_of(qwex, project, run)
    return queued


def detach(qwex: Qwex, project: Path, *args: str) -> str:
    done = qwex("run", "-d", "--no-trunc", "-b", "slurm", *args, cwd=project, check=True)
    return done.stdout.strip()


def test_flags_reach_sbatch_and_a_job_over_the_free_cpus_is_queued_with_slurms_reason(
    qwex: Qwex, project: Path, jobs: list[str]
) -> None:
    """The first run holds every CPU of the node; the second waits, `queued` with Slurm's
    pending reason, and a cancel takes it out of the queue."""
    cpus = os.cpu_count() or 1  # the node is this machine (.ci/slurm/cluster.sh)
    holder = detach(
        qwex,
        project,
        "--partition",
        "debug",
        "--time",
        "00:05:00",
        "--cpu",
        str(cpus),
        "--memory",
        "100Mi",
        "--",
        "sleep",
        "60",
    )
    jobs.append(job_id(project / ".qwex" / "runs" / holder))
    shown = wait_state(jobs[0], {"RUNNING"}, 30)
    assert shown["Partition"] == "debug"
    assert shown["TimeLimit"] == "00:05:00"
    assert shown["NumCPUs"] == str(cpus)
    assert shown["MinMemoryNode"] == "100M"
    waiter = detach(qwex, project, "--cpu", "1", "--", "true")
    jobs.append(job_id(project / ".qwex" / "runs" / waiter))
    queued = wait_queued_for(qwex, project, waiter, "Resources")
    assert queued["status"] == "queued"
    assert queued["reason"] == f"Slurm job {jobs[1]} waits: Resources"
    assert [h["status"] for h in queued["history"]] == ["pending", "queued"]
    assert job_state(jobs[1]) == "PENDING"
    qwex("cancel", waiter, cwd=project, check=True)
    done = status_of(qwex, project, waiter)
    assert done["status"] == "cancelled"
    assert done["started_at"] is None  # nothing of it ever ran
    assert job_state(jobs[1]) == "CANCELLED"
    qwex("cancel", holder, cwd=project, check=True)
    assert wait_status(qwex, project, holder, {"cancelled"}, 30)["exit_code"] == 143


def test_more_cpus_than_the_node_has_waits_with_slurms_reason(
    qwex: Qwex, project: Path, jobs: list[str]
) -> None:
    """Slurm takes the job and holds it (no node of the partition has that many CPUs): the
    run says so, in Slurm's words, until it is cancelled."""
    run = detach(qwex, project, "--cpu", str((os.cpu_count() or 1) + 1), "--", "true")
    jobs.append(job_id(project / ".qwex" / "runs" / run))
    queued = wait_queued_for(qwex, project, run, "PartitionConfig")
    assert queued["reason"] == f"Slurm job {jobs[0]} waits: PartitionConfig"
    shown = qwex("status", run, cwd=project, check=True).stdout
    assert "PartitionConfig" in shown
    qwex("cancel", run, cwd=project, check=True)
    assert status_of(qwex, project, run)["status"] == "cancelled"
    assert job_state(jobs[0]) == "CANCELLED"


def test_time_limit_hit_is_slurms_timeout(
    service: RunService, project: Path, jobs: list[str]
) -> None:
    """Slurm's own limit (checked every 30 s by slurmctld): TIMEOUT beside the agent's end."""
    run = service.submit(
        service.job(["sleep", "300"]),
    )
    job = job_id(service.store.run_dir(run.id))
    jobs.append(job)
    subprocess.run(["scontrol", "update", f"jobid={job}", "timelimit=0:05"], check=True)
    wait_state(job, {"TIMEOUT"}, 120)
    ended = service.wait(run, timeout=60)
    assert ended.status.value == "failed"  # not `cancelled`: nobody asked, the limit hit
    assert ended.reason is not None and ended.reason.startswith("TIMEOUT (TimeLimit): Slurm ")
    assert [h.status.value for h in ended.history][-2:] == ["cancelled", "failed"]
    assert ended.exit_code == 143  # the agent passed Slurm's SIGTERM on to the command


def test_a_preempted_job_is_failed_with_slurms_preempted(
    service: RunService, tmp_path: Path, jobs: list[str]
) -> None:
    """A job of the higher-tier partition `urgent` takes every CPU: Slurm cancels ours
    (PreemptMode=CANCEL, .ci/slurm/cluster.sh); the agent sees a plain SIGTERM."""
    cpus = str(os.cpu_count() or 1)
    run = service.submit(service.job(["sleep", "120"], resources={"cpu": cpus}))
    job = job_id(service.store.run_dir(run.id))
    jobs.append(job)
    wait_state(job, {"RUNNING"}, 30)
    urgent = subprocess.run(
        ["sbatch", "--parsable", "-p", "urgent", "-c", cpus, "-o", "/dev/null", "--wrap", "true"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    jobs.append(urgent)
    wait_state(job, {"PREEMPTED"}, 60)
    ended = service.wait(run, timeout=60)
    assert ended.status.value == "failed"
    assert ended.reason is not None and ended.reason.startswith("PREEMPTED: the job was preempted")
    assert ended.exit_code == 143


def test_memory_limit_hit_is_slurms_out_of_memory(service: RunService, jobs: list[str]) -> None:
    """cgroup v1 memory limits enforced by slurmd: the kernel kills the command."""
    command = ["sh", "-c", "head -c 400000000 /dev/zero | tail -c 400000000 >/dev/null"]
    run = service.submit(service.job(command, resources={"memory": "64Mi"}))
    jobs.append(job_id(service.store.run_dir(run.id)))
    ended = service.wait(run, timeout=60)
    assert ended.status.value == "failed"
    assert ended.reason is not None and "OUT_OF_MEMORY (OutOfMemory)" in ended.reason
    assert wait_state(jobs[0], {"OUT_OF_MEMORY"}, 10)


def test_cancel_is_scancel_and_the_logs_stay_complete(
    qwex: Qwex, project: Path, jobs: list[str]
) -> None:
    run = detach(qwex, project, "--", "sh", "-c", "echo one; echo two >&2; sleep 60; echo never")
    jobs.append(job_id(project / ".qwex" / "runs" / run))
    wait_status(qwex, project, run, {"running"}, 30)
    deadline = time.monotonic() + 10
    while "one" not in qwex("logs", run, cwd=project).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    qwex("cancel", run, cwd=project, check=True)
    ended = wait_status(qwex, project, run, {"cancelled"}, 30)
    assert ended["reason"] == "cancelled by user"
    wait_state(jobs[0], {"COMPLETED", "CANCELLED", "FAILED"}, 30)
    assert job_state(jobs[0]) not in ALIVE
    logs = qwex("logs", run, cwd=project, check=True)
    assert logs.stdout == "one\n"
    assert logs.stderr.endswith("two\n")


def test_the_node_needs_no_python(service: RunService, tmp_path: Path, jobs: list[str]) -> None:
    """The job's PATH holds no Python: the batch step is the agent bundle's own loader."""
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("sh", "sleep"):
        (bare / tool).symlink_to(subprocess.check_output(["which", tool], text=True).strip())
    command = ["sh", "-c", "command -v python3 python || echo no python; sleep 5"]
    run = service.submit(service.job(command, env={"PATH": str(bare)}))
    jobs.append(job_id(service.store.run_dir(run.id)))
    running = service.wait(run, timeout=0.1)
    deadline = time.monotonic() + 30
    while running.agent_pid is None and time.monotonic() < deadline:
        time.sleep(0.1)
        running = service.get(run.id)
    assert running.agent_pid is not None
    exe = os.readlink(f"/proc/{running.agent_pid}/exe")
    assert "/qwex/agent/" in exe and exe.endswith("/lib/ld-linux-x86-64.so.2"), exe
    environ = Path(f"/proc/{running.agent_pid}/environ").read_bytes().split(b"\0")
    assert f"PATH={bare}".encode() in environ
    ended = service.wait(run, timeout=60)
    assert ended.status.value == "succeeded"
    assert (service.store.run_dir(run.id) / "stdout.log").read_text() == "no python\n"


@pytest.fixture
def slurmd_restarted() -> Iterator[None]:
    """The node's slurmd started again after the test (and the node resumed)."""
    yield
    subprocess.run(["bash", str(CLUSTER), "up"], check=True, capture_output=True, timeout=120)


def test_slurmd_killed_mid_job(
    service: RunService, jobs: list[str], slurmd_restarted: None
) -> None:
    """slurmctld declares NODE_FAIL once slurmd stops answering, but on this node the job's
    processes live on (slurmstepd is not slurmd): the agent records the command's end, and
    Slurm's NODE_FAIL stands beside it."""
    command = ["sh", "-c", "for i in $(seq 45); do echo $i; sleep 1; done"]
    run = service.submit(service.job(command))
    job = job_id(service.store.run_dir(run.id))
    jobs.append(job)
    wait_state(job, {"RUNNING"}, 30)
    pid = int(Path("/var/lib/qwex-slurm/slurmd.pid").read_text())
    os.kill(pid, 9)
    wait_state(job, {"NODE_FAIL"}, 60)
    assert service.get(run.id).status.value == "running"  # its agent still runs here
    ended = service.wait(run, timeout=60)
    assert ended.status.value == "succeeded"
    assert ended.reason is not None and ended.reason.startswith("NODE_FAIL")
    assert (service.store.run_dir(run.id) / "stdout.log").read_text().splitlines()[-1] == "45"


def test_gc_cancels_only_this_projects_jobs_of_runs_that_are_over(
    qwex: Qwex, project: Path, tmp_path: Path, jobs: list[str]
) -> None:
    run = detach(qwex, project, "--", "sleep", "60")
    run_dir = project / ".qwex" / "runs" / run
    ours = job_id(run_dir)
    jobs.append(ours)
    wait_state(ours, {"RUNNING"}, 30)
    by_hand = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 60"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    jobs.append(by_hand)
    marked = SLURM.job(ours)
    assert marked is not None
    foreign = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-o",
            "/dev/null",
            "--comment=" + marked["Comment"].replace(marked["Comment"].split(":")[2], "0" * 16),
            "--wrap",
            "sleep 60",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    jobs.append(foreign)
    assert qwex("gc", cwd=project, check=True).stdout.count("slurm") == 0  # its run is live
    subprocess.run(["rm", "-rf", str(run_dir)], check=True)  # its record is gone
    done = qwex("gc", "--force", cwd=project, check=True)
    assert ours in done.stdout
    wait_state(ours, {"CANCELLED"}, 30)
    assert job_state(by_hand) in ALIVE | {"PENDING"}
    assert job_state(foreign) in ALIVE | {"PENDING"}


def test_without_accounting_a_job_slurmctld_forgot_is_lost_with_that_said(
    service: RunService, jobs: list[str]
) -> None:
    """No slurmdbd here: `sacct` answers nothing, so a job slurmctld dropped (MinJobAge after
    its end) whose agent recorded no end can only be `lost`, and the reason says why."""
    assert subprocess.run(["sacct", "-j", "1"], capture_output=True).returncode != 0
    run = service.submit(service.job(["sleep", "60"]))
    run_dir = service.store.run_dir(run.id)
    jobs.append(job_id(run_dir))
    running = service.wait(run, timeout=0.1)
    deadline = time.monotonic() + 30
    while running.agent_pid is None and time.monotonic() < deadline:
        time.sleep(0.1)
        running = service.get(run.id)
    assert running.agent_pid is not None
    os.kill(running.agent_pid, 9)
    wait_state(jobs[0], {"FAILED", "CANCELLED", "COMPLETED"}, 30)
    (run_dir / "slurm-job-id").write_text("99999999\n")  # a job slurmctld does not hold
    ended = service.wait(run, timeout=30)
    assert ended.status.value == "lost"
    assert ended.reason is not None
    assert "Slurm job 99999999 (slurmctld no longer holds it, and accounting has no" in ended.reason
