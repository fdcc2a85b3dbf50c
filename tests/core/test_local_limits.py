"""`--cpu`, `--memory` and `--gpu` on the local backend: a cgroup made for the run (and
removed with it) where this machine lets qwex make one, `CUDA_VISIBLE_DEVICES` for GPUs.

The limits are read back from the kernel's own files (the cgroup's limit and accounting),
never from how long something took. As an unprivileged user (tests/nonroot) the same flags
give one line saying why they are not enforced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cli_support import Qwex, wait_status
from users import unavailable

V1_MEMORY = Path("/sys/fs/cgroup/memory")


def _need_cgroups() -> None:
    """These tests make cgroups: root on a machine with cgroup v1 or a writable v2."""
    if os.geteuid() != 0:
        unavailable("enforcing limits needs root (or a delegated cgroup)")
    if not (V1_MEMORY.is_dir() or Path("/sys/fs/cgroup/cgroup.controllers").exists()):
        unavailable("no cgroup hierarchy mounted at /sys/fs/cgroup")


def _cgroups(record: dict[str, object]) -> list[str]:
    data = record.get("backend_data") or {}
    assert isinstance(data, dict)
    found = data.get("cgroups") or []
    assert isinstance(found, list)
    return [str(path) for path in found]


def _leftovers(short: str) -> list[str]:
    """Every cgroup folder on this machine whose name holds the run's short id."""
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs if short in d]
    return found


def _stat(path: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in path.read_text().splitlines())}


def test_a_run_over_its_memory_limit_ends_failed_oomkilled(project: Path, qwex: Qwex) -> None:
    _need_cgroups()
    over = qwex("run", "--memory", "64Mi", "--", "python3", "-c", "bytearray(512 << 20)")
    assert over.returncode == 137, over.stderr
    assert "not enforced" not in over.stderr, over.stderr
    (listed,) = json.loads(qwex("list", "--json", check=True).stdout)
    record = wait_status(qwex, listed["id"])
    assert record["status"] == "failed" and record["exit_code"] == 137, record
    assert record["reason"].startswith("OOMKilled"), record["reason"]
    assert "64Mi" in record["reason"]
    shown = qwex("status", listed["short_id"], check=True).stdout
    assert "OOMKilled" in shown and "137" in shown, shown
    made = _cgroups(record)
    assert any("memory" in path or "/sys/fs/cgroup/qwex" in path for path in made), made
    assert all(listed["short_id"] in Path(path).name for path in made), made
    assert [path for path in made if os.path.exists(path)] == []
    assert _leftovers(listed["short_id"]) == []


def test_a_run_within_its_memory_limit_succeeds(project: Path, qwex: Qwex) -> None:
    _need_cgroups()
    fits = qwex(
        "run", "--memory", "256Mi", "--", "python3", "-c", "print(len(bytearray(32 << 20)))"
    )
    assert fits.returncode == 0, fits.stderr
    assert fits.stdout == f"{32 << 20}\n"


def test_cpu_half_a_core_is_what_the_kernel_gives_a_busy_loop(project: Path, qwex: Qwex) -> None:
    _need_cgroups()
    busy = "import sys\nprint('busy', flush=True)\nwhile True: pass"
    started = qwex("run", "-d", "--cpu", "0.5", "--", "python3", "-c", busy, check=True)
    short = started.stdout.strip()
    try:
        record = wait_status(qwex, short, {"running"})
        follow = subprocess.Popen(
            [str(Path(sys.executable).parent / "qwex"), "logs", "-f", short],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert follow.stdout is not None and follow.stdout.readline() == "busy\n"
        follow.kill()
        follow.wait()
        record = json.loads(qwex("status", short, "--json", check=True).stdout)
        made = _cgroups(record)
        cpu = next(
            Path(p)
            for p in made
            if (Path(p) / "cpu.max").exists() or (Path(p) / "cpu.cfs_quota_us").exists()
        )
        if (cpu / "cpu.max").exists():  # v2: "quota period" and usage/throttling in cpu.stat
            quota, period = (int(x) for x in (cpu / "cpu.max").read_text().split())
            usage_file, usage_key, usage_unit = cpu / "cpu.stat", "usage_usec", 1000
        else:
            quota = int((cpu / "cpu.cfs_quota_us").read_text())
            period = int((cpu / "cpu.cfs_period_us").read_text())
            acct = next(Path(p) for p in made if (Path(p) / "cpuacct.usage").exists())
            usage_file, usage_key, usage_unit = acct / "cpuacct.usage", "", 1
        assert quota * 2 == period, (quota, period)

        def usage_ns() -> int:
            text = usage_file.read_text()
            return int(text) if not usage_key else _stat(usage_file)[usage_key] * usage_unit

        before, used_before = _stat(cpu / "cpu.stat"), usage_ns()
        # Wait for the kernel to hold the loop back at least once (a busy loop wants a whole
        # core; on a loaded machine it may take a while to get even its half), and for 20
        # periods, then look at what it was given meanwhile.
        deadline = time.monotonic() + 120
        while True:
            now = _stat(cpu / "cpu.stat")
            if now["nr_throttled"] > before["nr_throttled"] and (
                now["nr_periods"] >= before["nr_periods"] + 20
            ):
                break
            assert time.monotonic() < deadline, f"never throttled: {before} {now}"
            time.sleep(0.1)
        after, used_after = _stat(cpu / "cpu.stat"), usage_ns()
        periods = after["nr_periods"] - before["nr_periods"]
        used = used_after - used_before
        # Never more than half a core over the periods the kernel counted (one period of
        # slack for the two files not being read at the same instant).
        assert used <= (periods + 1) * period * 1000 // 2, (used, periods, period)
    finally:
        qwex("cancel", short)
    record = wait_status(qwex, short)
    assert record["status"] == "cancelled", record
    assert [path for path in _cgroups(record) if os.path.exists(path)] == []
    assert _leftovers(short) == []


def test_the_whole_process_tree_is_in_the_cgroup_and_nothing_is_left(
    project: Path, qwex: Qwex
) -> None:
    """A grandchild that left the command's process group (setsid) is still in the run's
    cgroup, and is gone with the run: the cgroup is removed only once it is empty."""
    _need_cgroups()
    pid_file = project / "escaped.pid"
    script = f"setsid sh -c 'echo $$ > {pid_file}; exec sleep 300' & sleep 300"
    started = qwex("run", "-d", "--memory", "512Mi", "--", "sh", "-c", script, check=True)
    short = started.stdout.strip()
    from cli_support import pid_in

    escaped = pid_in(pid_file)
    record = json.loads(qwex("status", short, "--json", check=True).stdout)
    made = _cgroups(record)
    assert made, record
    for path in made:
        assert escaped in {int(p) for p in (Path(path) / "cgroup.procs").read_text().split()}
    qwex("cancel", short, check=True)
    record = wait_status(qwex, short)
    assert record["status"] == "cancelled"
    assert not Path(f"/proc/{escaped}").exists() or "Z" in _state(escaped)
    assert [path for path in made if os.path.exists(path)] == []
    assert _leftovers(short) == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_no_cgroup_hierarchy_means_one_line_and_the_run_still_works(
    project: Path, qwex: Qwex
) -> None:
    """A machine with no cgroup file system at all (a mount namespace with an empty
    /sys/fs/cgroup): one line per reason, naming the flags, and the run goes on."""
    if os.geteuid() != 0:
        unavailable("an empty /sys/fs/cgroup in a mount namespace needs root")
    from cli_support import QWEX

    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            'mount -t tmpfs none /sys/fs/cgroup && exec "$0" "$@"',
            QWEX,
            "run",
            "--memory",
            "1Gi",
            "--cpu",
            "2",
            "--",
            "echo",
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    lines = [line for line in done.stderr.splitlines() if "not enforced" in line]
    assert len(lines) == 1, done.stderr
    assert "--memory 1Gi" in lines[0] and "--cpu 2" in lines[0], lines
    assert "no cgroup" in lines[0], lines


def test_gpu_here_cannot_be_satisfied_and_says_so(project: Path, qwex: Qwex) -> None:
    """With no CUDA_VISIBLE_DEVICES, the pool is the GPUs the machine has: none on the test
    machines, so `--gpu 1` is an error before any run is made (on a machine with NVIDIA
    GPUs, the first one is picked)."""
    from cli_support import QWEX

    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    done = subprocess.run(
        [QWEX, "run", "--gpu", "1", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    if Path("/proc/driver/nvidia/gpus").is_dir():  # pragma: no cover - a GPU machine
        assert done.returncode == 0 and done.stdout == "0\n", done.stderr
        return
    assert done.returncode == 1, done.stderr
    assert "--gpu 1 cannot be satisfied" in done.stderr and "no GPU" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert json.loads(qwex("list", "--json", check=True).stdout) == []


def test_gpu_selects_from_cuda_visible_devices(project: Path, qwex: Qwex) -> None:
    """An already-set CUDA_VISIBLE_DEVICES is the pool qwex picks from."""
    pool = {"CUDA_VISIBLE_DEVICES": "2,5,7"}
    two = qwex("run", "--gpu", "2", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES", env=pool)
    assert two.returncode == 0, two.stderr
    assert two.stdout == "2,5\n"
    none = qwex("run", "--gpu", "0", "--", "sh", "-c", "echo [$CUDA_VISIBLE_DEVICES]", env=pool)
    assert none.stdout == "[]\n", none.stderr
    kept = qwex("run", "--", "sh", "-c", "echo $CUDA_VISIBLE_DEVICES", env=pool)
    assert kept.stdout == "2,5,7\n"
    many = qwex("run", "--gpu", "4", "--", "true", env=pool)
    assert many.returncode == 1
    assert "--gpu 4 cannot be satisfied" in many.stderr and "2,5,7" in many.stderr


def test_an_oom_kill_of_a_child_makes_the_run_oomkilled(project: Path, qwex: Qwex) -> None:
    """The command (a shell) survives the kill of its child and exits with a code of its
    own: the run's own cgroup counted the OOM kill, so the reason says so, as Docker's
    State.OOMKilled does; the exit code is the command's."""
    _need_cgroups()
    script = 'python3 -c "bytearray(512 << 20)" || exit 7'
    over = qwex("run", "--memory", "64Mi", "--", "sh", "-c", script)
    assert over.returncode == 7, over.stderr
    (listed,) = json.loads(qwex("list", "--json", check=True).stdout)
    record = wait_status(qwex, listed["id"])
    assert record["status"] == "failed" and record["exit_code"] == 7, record
    assert record["reason"].startswith("OOMKilled"), record["reason"]


def test_a_killed_agent_leaves_no_cgroup_and_no_process(project: Path, qwex: Qwex) -> None:
    """SIGKILL to the agent (nothing it could clean up after): the run ends `lost` once a
    qwex command looks, and that command kills what is left in the cgroup and removes it."""
    _need_cgroups()
    import signal

    from cli_support import pid_in

    pid_file = project / "command.pid"
    script = f"echo $$ > {pid_file}; exec sleep 300"
    short = qwex("run", "-d", "--memory", "256Mi", "--", "sh", "-c", script, check=True)
    short_id = short.stdout.strip()
    command = pid_in(pid_file)
    record = wait_status(qwex, short_id, {"running"})
    made = _cgroups(record)
    assert made, record
    agent = int((project / ".qwex" / "runs" / record["id"] / "agent.pid").read_text().split()[0])
    os.kill(agent, signal.SIGKILL)
    record = wait_status(qwex, short_id, timeout=60)
    assert record["status"] == "lost", record
    assert _state(command) in ("gone", "Z")
    assert [path for path in made if os.path.exists(path)] == []
    assert _leftovers(short_id) == []


def test_cgroup_v2_without_the_controllers_is_named(project: Path) -> None:
    """A machine whose only cgroup file system is a v2 one that offers neither controller
    (here: a mount namespace with cgroup2 alone at /sys/fs/cgroup; this kernel keeps memory
    and cpu in v1): one line saying so, and the run goes on."""
    if os.geteuid() != 0:
        unavailable("mounting cgroup2 in a mount namespace needs root")
    from cli_support import QWEX

    mount = "mount -t tmpfs none /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup"
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f'{mount} && exec "$0" "$@"',
            QWEX,
            "run",
            "--memory",
            "1Gi",
            "--",
            "echo",
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    lines = [line for line in done.stderr.splitlines() if "not enforced" in line]
    assert lines == [
        "qwex: --memory 1Gi is not enforced: cgroup v2 at /sys/fs/cgroup offers no memory "
        "controller"
    ], done.stderr


def test_read_only_cgroups_as_in_a_container_are_named(project: Path) -> None:
    """Root in a container whose cgroup file system is read-only (as Docker mounts it for
    a container without its own cgroups; here a mount namespace remounts it so): one line,
    and the run goes on."""
    if os.geteuid() != 0:
        unavailable("remounting the cgroup file system read-only needs root")
    _need_cgroups()
    from cli_support import QWEX

    hierarchy = V1_MEMORY if V1_MEMORY.is_dir() else Path("/sys/fs/cgroup")  # v1, or v2's one
    remount = f"mount -o remount,bind,ro {hierarchy}"
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f'{remount} && exec "$0" "$@"',
            QWEX,
            "run",
            "--memory",
            "64Mi",
            "--",
            "echo",
            "hi",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout == "hi\n", done.stderr
    lines = [line for line in done.stderr.splitlines() if "not enforced" in line]
    assert lines == [
        "qwex: --memory 64Mi is not enforced: the cgroup memory controller is read-only here "
        "(a container's cgroups are, unless it is given its own)"
    ], done.stderr
