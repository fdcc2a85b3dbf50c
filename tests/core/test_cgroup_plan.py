"""Where a run's cgroup goes on a cgroup v2 machine (the test machines run v1, whose kernel
keeps memory and cpu out of v2: tests/core/test_local_limits.py drives v1 for real).

A folder laid out as a v2 hierarchy shows it (cgroup.controllers, cgroup.subtree_control,
cgroup.procs in each cgroup), named by a mountinfo and a /proc/self/cgroup of its own:
the run's cgroup never goes under a cgroup with processes in it (v2's rule that only
the root may hold processes and enable controllers for its children at once).
"""

from __future__ import annotations

from pathlib import Path

from qwex_core.runners import cgroups

REQUEST = cgroups.Request(cpu=0.5, memory=64 << 20, memory_text="64Mi")


def _cgroup(folder: Path, *, controllers: str, enabled: str = "", procs: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cgroup.controllers").write_text(controllers + "\n")
    (folder / "cgroup.subtree_control").write_text(enabled + "\n")
    (folder / "cgroup.procs").write_text(procs)
    return folder


def _machine(tmp_path: Path, own: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "cgroup2"
    _cgroup(root, controllers="cpu memory pids", enabled="cpu memory pids")
    (root / "cgroup.procs").write_text("1\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 25 0:26 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    proc_cgroup = tmp_path / "cgroup"
    proc_cgroup.write_text(f"0::{own}\n")
    return root, {"cgroup_file": str(proc_cgroup), "mountinfo": str(mountinfo)}


def test_v2_the_run_goes_under_the_nearest_cgroup_with_the_controllers_enabled(
    tmp_path: Path,
) -> None:
    root, files = _machine(tmp_path, "/user.slice/user-1000.slice/app.slice/term.scope")
    user = _cgroup(root / "user.slice", controllers="cpu memory pids", enabled="cpu memory pids")
    user = _cgroup(user / "user-1000.slice", controllers="cpu memory pids", enabled="memory pids")
    app = _cgroup(user / "app.slice", controllers="memory pids", enabled="memory pids")
    _cgroup(app / "term.scope", controllers="memory pids", procs="4242\n4243\n")
    memory_only = cgroups.Request(memory=64 << 20, memory_text="64Mi")
    plan = cgroups.plan(memory_only, **files)
    assert plan.refused == {}
    (place,) = plan.places
    assert place.parent == str(app) and place.enable == []  # not the scope: it has processes
    made = cgroups.make(plan, "qwex-run-0123456789ab")
    assert made == [str(app / "qwex-run-0123456789ab")]
    assert (app / "qwex-run-0123456789ab" / "memory.max").read_text() == str(64 << 20)


def test_v2_controllers_are_enabled_only_where_no_process_is(tmp_path: Path) -> None:
    root, files = _machine(tmp_path, "/work/shell")
    work = _cgroup(root / "work", controllers="cpu memory pids", enabled="pids")
    _cgroup(work / "shell", controllers="pids", procs="4242\n")
    plan = cgroups.plan(REQUEST, **files)
    (place,) = plan.places
    assert place.parent == str(work) and sorted(place.enable) == ["cpu", "memory"]
    (folder,) = cgroups.make(plan, "qwex-run-0123456789ab")
    assert (work / "cgroup.subtree_control").read_text() == "+memory +cpu"
    assert (Path(folder) / "cpu.max").read_text() == "50000 100000"
    assert (Path(folder) / "memory.max").read_text() == str(64 << 20)
    assert (
        not (Path(folder) / "memory.swap.max").exists()
        or (Path(folder) / "memory.swap.max").read_text() == "0"
    )


def test_v2_a_cgroup_with_processes_is_passed_over_for_the_root(tmp_path: Path) -> None:
    """Up to the root, which may hold processes and still enable controllers."""
    root, files = _machine(tmp_path, "/busy")
    _cgroup(root / "busy", controllers="cpu memory pids", procs="4242\n")
    (place,) = cgroups.plan(REQUEST, **files).places
    assert place.parent == str(root)


def test_v2_without_the_controller_says_so(tmp_path: Path) -> None:
    root, files = _machine(tmp_path, "/")
    (root / "cgroup.controllers").write_text("pids\n")
    plan = cgroups.plan(REQUEST, **files)
    assert plan.places == []
    assert cgroups.notes(REQUEST, plan) == [
        f"--memory 64Mi, --cpu 0.5 are not enforced: cgroup v2 at {root} offers no memory "
        "and cpu controllers"
    ]
