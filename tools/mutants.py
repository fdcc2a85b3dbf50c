"""The mutation check (`nox -s mutants`): cosmic-ray over the modules whose rules every run
goes through, each against the fast tests that exercise it; prints killed/survived per file
and every surviving mutant. Exits 1 when a mutant of `lifecycle.judge` survives (or was not
run): the verdict rules must be pinned down by tests, line by line.

Runs in a copy of the tree (`--tree`, made by the nox session) with qwex-core installed
editable from the copy: cosmic-ray edits the module in place, and the agent tests start
`python -m qwex_core.agent` processes that must see the mutant too. One mutant at a time
(one core); `--budget` bounds each module's time, and what is not run by then is counted
as such, not as killed. The sessions are kept in `--work`: the next run of an unchanged
module goes on where the last one stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    module: str
    """Path of the module, from the tree's root."""
    tests: tuple[str, ...]
    """The fast tests that exercise it."""
    strict: tuple[str, ...] = ()
    """Functions in which no mutant may survive."""


TARGETS = {
    "lifecycle": Target(
        "qwex-core/src/qwex_core/lifecycle.py",
        ("tests/core/test_lifecycle.py", "tests/core/test_lifecycle_bounds.py"),
        strict=("judge",),
    ),
    "store": Target(
        "qwex-core/src/qwex_core/store.py",
        ("tests/core/test_store.py",),
    ),
    "supervisor": Target(
        "qwex-core/src/qwex_core/agent/supervisor.py",
        ("tests/core/test_agent.py", "tests/core/test_documented_agent.py"),
    ),
}
PER_MUTANT_TIMEOUT = 120.0
"""A mutant that makes the tests hang (a loop that never ends) is killed by this timeout:
cosmic-ray counts that as killed, as a user would notice a command that never returns."""


def config(target: Target, work: Path) -> Path:
    tests = " ".join(target.tests)
    command = f"{sys.executable} -m pytest -x -q -p no:randomly -p no:cacheprovider {tests}"
    path = work / f"{Path(target.module).stem}.toml"
    path.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.module}"\n'
        f"timeout = {PER_MUTANT_TIMEOUT}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return path


def cosmic_ray(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "cosmic-ray"), *args]


def run_target(name: str, target: Target, tree: Path, work: Path, budget: float) -> bool:
    """Mutate `target` within `budget` seconds; print the figures. False when a strict
    function kept a surviving (or unrun) mutant."""
    cfg, db = config(target, work), work / f"{name}.sqlite"
    module = tree / target.module
    pristine = module.read_bytes()
    stamp = work / f"{name}.source"
    if not (db.exists() and stamp.exists() and stamp.read_bytes() == pristine):
        db.unlink(missing_ok=True)  # a new session: the module changed, or none was begun
        subprocess.run(cosmic_ray("init", str(cfg), str(db)), cwd=tree, check=True)
        stamp.write_bytes(pristine)
    baseline = subprocess.run(cosmic_ray("baseline", str(cfg)), cwd=tree)
    if baseline.returncode != 0:
        print(f"{name}: the tests fail on the unmutated code; nothing to measure", flush=True)
        return False
    started = time.monotonic()
    proc = subprocess.Popen(cosmic_ray("exec", str(cfg), str(db)), cwd=tree, start_new_session=True)
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"{name}: budget of {budget:.0f}s spent; the rest is reported as not run")
    finally:
        module.write_bytes(pristine)  # a killed exec may leave a mutant in place
        kill_leftovers()
    dump = subprocess.run(
        cosmic_ray("dump", str(db)), cwd=tree, capture_output=True, text=True, check=True
    )
    return report(name, target, module, dump.stdout, time.monotonic() - started)


def kill_leftovers() -> None:
    """Kill what the mutants left running: an agent whose mutant never kills its command
    outlives the test that a timeout stopped (its command in a group of its own). Such an
    agent's run folder is in the tests' temporary folder, under this session's TMPDIR."""
    mark = f"--run-dir\0{tempfile.gettempdir()}/pytest-of-".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if mark not in (proc / "cmdline").read_bytes():
                continue
            children = (proc / "task" / proc.name / "children").read_text().split()
        except OSError:
            continue
        for pid in [*map(int, children), int(proc.name)]:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)  # the command's group: its pgid is its pid
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def report(name: str, target: Target, module: Path, dump: str, seconds: float) -> bool:
    lines = module.read_text().splitlines()
    counts = {"killed": 0, "survived": 0, "incompetent": 0, "not run": 0}
    survivors: list[str] = []
    strict_failures = 0
    for row in dump.splitlines():
        item, result = json.loads(row)
        mutation = item["mutations"][0]
        outcome = "not run" if result is None else str(result.get("test_outcome") or "not run")
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome in ("survived", "not run") and mutation["definition_name"] in target.strict:
            strict_failures += 1
        if outcome == "survived":
            line = mutation["start_pos"][0]
            survivors.append(
                f"  {Path(target.module).name}:{line} in {mutation['definition_name']}: "
                f"{mutation['operator_name'].removeprefix('core/')}: {lines[line - 1].strip()}"
            )
    figures = ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("killed", "survived"))
    print(f"{target.module}: {figures} ({seconds:.0f}s)")
    print("\n".join(survivors), flush=True)
    if strict_failures:
        print(f"{name}: {strict_failures} mutant(s) of {', '.join(target.strict)} not killed")
    return strict_failures == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, required=True, help="the copy to mutate")
    parser.add_argument(
        "--work", type=Path, required=True, help="the sessions, kept: a run goes on from them"
    )
    parser.add_argument("--budget", type=float, default=1800, help="seconds per module")
    parser.add_argument("targets", nargs="*", help=f"of {', '.join(TARGETS)} (default: all)")
    args = parser.parse_args()
    if unknown := set(args.targets) - set(TARGETS):
        parser.error(
            f"unknown target(s) {', '.join(sorted(unknown))}: choose from {', '.join(TARGETS)}"
        )
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    for name in args.targets or list(TARGETS):
        ok = run_target(name, TARGETS[name], args.tree, work, args.budget) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
