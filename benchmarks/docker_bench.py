"""The Docker backend's figures (issues 3 and 8), each from samples alternated with their
twins in the same run, so that a noisy neighbour hurts both alike.

1. Agent start overhead: `docker run --rm -v AGENT:/qwex:ro -v RUNS:/qwex-run IMG
   /qwex/bin/qwex run --local --run-dir /qwex-run/N --quiet -- true` (the agent as qwex's
   containers start it) against `docker run --rm IMG true`, in milliseconds (target <= 50 ms
   extra); also reported: the agent with `run --local -- true` alone, which then finds a
   project and makes a run id itself.
2. `qwex run -b docker --image IMG -- true` against the plain `docker run --rm IMG true` a
   user types, as a ratio (reported; no target of its own).
3. What the Docker backend adds on top of that plain run, in local runs:
   (qwex_docker - docker_plain) / qwex_local, where qwex_local is `qwex run -- true` taken
   in the same three-way alternation (target <= 1.0: Docker costs no more than a local run
   on top of Docker's own work).
4. 1 GiB of stdout through the agent in the container against the bare command writing the
   same bytes to a file on the same bind mount, in % of the bare rate (target >= 70 %).

qwex returns once the run's record is final, while the daemon is still auto-removing the
container; before the next sample the bench waits, off the clock, until no container of the
previous sample exists, so that the removal lands on nobody's time.

Then, from separate runs with `QWEX_TIMINGS` set (not the timed ones), where the time of a
Docker and of a local `qwex run` goes, phase by phase.

Run alone (`python benchmarks/docker_bench.py [--repeat N]`: prints the tables, writes
.bench/docker.json) or through `nox -s bench`, which calls `main()`. With
`QWEX_BENCH_BASELINE=/path/to/other/bin/qwex`, that installation's `-b docker` and local runs
join the same alternation (a before/after figure of a change, from one run).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sampling import alternated

ROOT = Path(__file__).resolve().parents[1]
QWEX = str(Path(sys.executable).parent / "qwex")
IMAGE = os.environ.get("QWEX_BENCH_IMAGE", "qwex-test/busybox")
BASELINE = os.environ.get("QWEX_BENCH_BASELINE")
"""Another installation's `qwex` (e.g. main's, in a venv of its own) to time in the same
alternation, for a before/after figure of a change measured in one run."""
OUTPUT_BYTES = 1 << 30
DOCKER_RUN = ["docker", "run", "--rm"]
PHASES = {
    "cli-start": "Python start, qwex_core imported",
    "job-built": "click, plugins, configuration, the job",
    "record-created": "run record written (pending)",
    "docker-imported": "docker SDK imported",
    "docker-connected": "client created (API version remembered or asked)",
    "image-inspected": "image inspected",
    "container-created": "container created",
    "container-started": "container started",
    "backend-started": "backend start returned",
    "agent-running": "agent started the command (record: running)",
    "agent-ended": "agent recorded the end",
    "record-final": "qwex saw the final record",
    "exit": "qwex exits",
    "returned": "process gone (as timed)",
}
"""The phases a `qwex run` passes, in order: `QWEX_TIMINGS` marks and the record's history."""


def timed(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def agent_bundle() -> Path:
    """The agent for this machine, built if missing or stale."""
    from qwex_agent.build import build

    return build()


def wait_removed(project: Path, timeout: float = 60.0) -> None:
    """Until the daemon has removed every container of the project's qwex runs."""
    import docker

    api = docker.APIClient(version="auto")
    wanted = {"label": f"qwex.project={project}"}
    deadline = time.monotonic() + timeout
    while api.containers(all=True, filters=wanted):
        if time.monotonic() > deadline:
            raise RuntimeError(f"qwex containers of {project} still exist after {timeout:g} s")
        time.sleep(0.01)
    api.close()


def start_overhead(agent: Path, repeat: int, runs: Path) -> dict[str, float]:
    """The bare container against the same one starting `true` through the agent: as qwex
    starts it (`--run-dir` in a mounted run folder, `--quiet`), and with `run --local` alone
    (the agent then finds a project and makes a run id itself, which qwex never asks of it
    in a container)."""
    bare = [*DOCKER_RUN, IMAGE, "true"]
    mounted = [*DOCKER_RUN, "-v", f"{agent}:/qwex:ro"]
    alone = [*mounted, IMAGE, "/qwex/bin/qwex", "run", "--local", "--", "true"]
    count = iter(range(1_000_000))

    def as_qwex() -> float:
        run_dir = f"/qwex-run/{next(count)}"
        argv = [*mounted, "-v", f"{runs}:/qwex-run", IMAGE, "/qwex/bin/qwex", "run", "--local"]
        return timed([*argv, "--run-dir", run_dir, "--quiet", "--", "true"])

    return alternated(
        {"bare": lambda: timed(bare), "agent": as_qwex, "agent_alone": lambda: timed(alone)},
        repeat,
    )


def qwex_argv(backend: str, qwex: str = QWEX) -> list[str]:
    image = ["--image", IMAGE] if backend == "docker" else []
    return [qwex, "run", "--backend", backend, *image, "--", "true"]


def cli_figures(project: Path, repeat: int) -> dict[str, float]:
    """Plain `docker run --rm`, `qwex run -b docker` and local `qwex run`, in turn."""

    def docker_plain() -> float:
        return timed([*DOCKER_RUN, IMAGE, "true"])

    def qwex_docker() -> float:
        seconds = timed(qwex_argv("docker"), project)
        wait_removed(project)
        return seconds

    def qwex_local() -> float:
        return timed(qwex_argv("local"), project)

    samples = {"docker_plain": docker_plain, "qwex_docker": qwex_docker, "qwex_local": qwex_local}
    if BASELINE:

        def baseline_docker() -> float:
            seconds = timed(qwex_argv("docker", BASELINE), project)
            wait_removed(project)
            return seconds

        samples["baseline_docker"] = baseline_docker
        samples["baseline_local"] = lambda: timed(qwex_argv("local", BASELINE), project)
    return alternated(samples, repeat)


TRAPPING = "trap 'exit 143' TERM; echo started; while true; do sleep 0.1; done"
"""A command that ends on SIGTERM by its own trap (as tests/docker's cancel test runs it)."""


def cancel_latency(project: Path, repeat: int) -> float:
    """Median seconds of `qwex cancel` on a running Docker run whose command ends at the
    SIGTERM: from the command to the recorded end (the test only checks the order)."""
    samples = []
    for _ in range(repeat):
        argv = [*qwex_argv("docker")[:-2], "-d", "--no-trunc", "--grace-period", "600"]
        started = subprocess.run(
            [*argv, "--", "sh", "-c", TRAPPING],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
        )
        log = project / ".qwex" / "runs" / started.stdout.strip() / "stdout.log"
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().startswith("started")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{log} never said started")
            time.sleep(0.01)
        samples.append(timed([QWEX, "cancel", started.stdout.strip()], project))
        wait_removed(project)
    return statistics.median(samples)


def phases_of(project: Path, backend: str) -> dict[str, float]:
    """Milliseconds from spawning one `qwex run` to each phase it reached, and the CLI's CPU
    milliseconds by then (as `cpu:PHASE`)."""
    marks_file = project / "timings.txt"
    marks_file.unlink(missing_ok=True)
    env = {**os.environ, "QWEX_TIMINGS": str(marks_file)}
    spawned = time.time()
    out = subprocess.run(
        [*qwex_argv(backend)[:2], "--json", *qwex_argv(backend)[2:]],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    marks = {"returned": time.time()}
    cpu = {}
    for line in marks_file.read_text().splitlines():
        _, phase, at, cpu_at = line.split()
        marks[phase] = float(at)
        cpu[f"cpu:{phase}"] = float(cpu_at) * 1000
    history = {h["status"]: h["at"] for h in json.loads(out)["history"]}
    marks["agent-running"] = datetime.fromisoformat(history["running"]).timestamp()
    marks["agent-ended"] = datetime.fromisoformat(history["succeeded"]).timestamp()
    if backend == "docker":
        wait_removed(project)
    return {**{phase: (at - spawned) * 1000 for phase, at in marks.items()}, **cpu}


def breakdown(project: Path, repeat: int) -> dict[str, dict[str, float]]:
    """Median milliseconds since spawn of every phase, per backend, runs taken in turn."""
    taken: dict[str, list[dict[str, float]]] = {"docker": [], "local": []}
    for _ in range(repeat):
        for backend, runs in taken.items():
            runs.append(phases_of(project, backend))
    return {
        backend: {
            phase: statistics.median(run[phase] for run in runs)
            for phase in [*PHASES, *(f"cpu:{p}" for p in PHASES)]
            if phase in runs[0]
        }
        for backend, runs in taken.items()
    }


def throughput(agent: Path, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        out.chmod(0o777)

        def bare() -> float:
            seconds = timed(
                [
                    *DOCKER_RUN,
                    "-v",
                    f"{out}:/out",
                    IMAGE,
                    "sh",
                    "-c",
                    f"head -c {OUTPUT_BYTES} /dev/zero > /out/bare.log",
                ]
            )
            (out / "bare.log").unlink()
            return seconds

        def through_agent() -> float:
            seconds = timed(
                [
                    *DOCKER_RUN,
                    "-v",
                    f"{agent}:/qwex:ro",
                    "-v",
                    f"{out}:/qwex-run",
                    IMAGE,
                    "/qwex/bin/qwex",
                    "run",
                    "--local",
                    "--run-dir",
                    "/qwex-run/r",
                    "--quiet",
                    "--",
                    "head",
                    "-c",
                    str(OUTPUT_BYTES),
                    "/dev/zero",
                ]
            )
            size = (out / "r" / "stdout.log").stat().st_size
            assert size == OUTPUT_BYTES, f"the agent logged {size} bytes"
            shutil.rmtree(out / "r")
            return seconds

        return alternated({"bare": bare, "agent": through_agent}, repeat, warmup=1)


def ready() -> str | None:
    """Why the figures cannot be measured here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no image {IMAGE} or no daemon ({probe.stderr.strip()}); run `nox -s images`"
    return None


def main(repeat: int = 20) -> list[dict[str, Any]]:
    """The figures as {figure, value, target, unit} rows (empty when Docker is missing);
    prints where the time goes."""
    problem = ready()
    if problem:
        print(f"docker figures skipped: {problem}", file=sys.stderr)
        return []
    agent = agent_bundle()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as runs:
        start = start_overhead(agent, repeat, Path(runs))
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp).resolve()
        (project / "qwex.toml").write_text("")
        cli = cli_figures(project, repeat)
        phases = breakdown(project, max(5, repeat // 2))
        cancel = cancel_latency(project, max(5, repeat // 4))
    out = throughput(agent, max(5, repeat // 4))
    load = (round(load_before, 1), round(os.getloadavg()[0], 1))
    plain, ours, local = cli["docker_plain"], cli["qwex_docker"], cli["qwex_local"]
    ms = {name: round(seconds * 1000, 1) for name, seconds in cli.items()}
    rows: list[dict[str, Any]] = [
        {
            "figure": f"docker: agent start overhead vs `docker run --rm {IMAGE} true`",
            "value": round((start["agent"] - start["bare"]) * 1000, 1),
            "target": 50,
            "unit": "ms",
        },
        {
            "figure": "docker: the same, `run --local` alone (no run folder given)",
            "value": round((start["agent_alone"] - start["bare"]) * 1000, 1),
            "target": None,
            "unit": "ms",
        },
        {
            "figure": f"docker: `qwex run -b docker --image {IMAGE} -- true` vs `docker run --rm`",
            "value": round(ours / plain, 2),
            "target": None,
            "unit": "x twin",
            "ms": ms["qwex_docker"],
            "twin": f"docker run --rm {IMAGE} true",
            "twin_ms": ms["docker_plain"],
        },
        {
            "figure": "docker: what -b docker adds to `docker run --rm`, in local `qwex run`s",
            "value": round((ours - plain) / local, 2),
            "target": 1.0,
            "unit": "x local",
            "ms": round(ms["qwex_docker"] - ms["docker_plain"], 1),
            "twin": "qwex run -- true",
            "twin_ms": ms["qwex_local"],
        },
        *(
            [
                {
                    "figure": f"docker: the same, with the baseline {BASELINE}",
                    "value": round((cli["baseline_docker"] - plain) / cli["baseline_local"], 2),
                    "target": 1.0,
                    "unit": "x local",
                    "ms": round(ms["baseline_docker"] - ms["docker_plain"], 1),
                    "twin": "qwex run -- true (baseline)",
                    "twin_ms": ms["baseline_local"],
                }
            ]
            if BASELINE
            else []
        ),
        {
            "figure": "docker: `qwex cancel` of a command that ends at SIGTERM",
            "value": round(cancel * 1000, 1),
            "target": 3000,
            "unit": "ms",
        },
        {
            "figure": "docker: 1 GiB stdout through the agent in the container, % of bare",
            "value": round(100 * out["bare"] / out["agent"], 1),
            "target": 70,
            "unit": "% (min)",
        },
    ]
    raw = {
        "image": IMAGE,
        "repeat": repeat,
        "load_average_1min": load,
        "docker_run_true_s": start["bare"],
        "agent_run_true_s": start["agent"],
        "agent_alone_run_true_s": start["agent_alone"],
        **{f"{name}_s": seconds for name, seconds in cli.items()},
        "cancel_s": cancel,
        "bare_1gib_s": out["bare"],
        "agent_1gib_s": out["agent"],
    }
    print_breakdown(phases)
    print(
        f"docker figures: {repeat} alternated samples per twin ({max(5, repeat // 4)} for 1 GiB); "
        f"load average {load[0]} -> {load[1]} on {os.cpu_count()} cores"
    )
    target = ROOT / ".bench" / "docker.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        json.dumps(
            {
                "machine": os.uname().machine,
                "cpus": os.cpu_count(),
                "results": rows,
                "raw_medians": raw,
                "phases_ms": phases,
            },
            indent=2,
        )
        + "\n"
    )
    return rows


def print_breakdown(phases: dict[str, dict[str, float]]) -> None:
    """Each phase's median time since spawn, the step from the phase before, and the CLI's
    CPU time in that step, per backend."""
    print(f"where `qwex run -- true` spends its time (QWEX_TIMINGS, medians; image {IMAGE}):")
    head = f"{'ms':>7} {'(+step':>7} {'cpu)':>6}"
    width = max(len(what) for what in PHASES.values())
    print(f"{'phase':<{width}}  {'docker':^22}  {'local':^22}")
    print(f"{'':<{width}}  {head}  {head}")
    before = {"docker": (0.0, 0.0), "local": (0.0, 0.0)}
    for phase, what in PHASES.items():
        cells = []
        for backend in ("docker", "local"):
            at = phases[backend].get(phase)
            if at is None:
                cells.append(" " * 22)
                continue
            cpu = phases[backend].get(f"cpu:{phase}")
            step_cpu = "" if cpu is None else f"{cpu - before[backend][1]:.1f}"
            cells.append(f"{at:>7.1f} {f'+{at - before[backend][0]:.1f}':>7} {step_cpu:>6}")
            before[backend] = (at, before[backend][1] if cpu is None else cpu)
        print(f"{what:<{width}}  {cells[0]}  {cells[1]}")
    print()


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure'.ljust(width)}  {'median':>8}  {'target':>7}  unit     ms (twin ms)")
    for r in rows:
        times = f"{r['ms']} ({r['twin_ms']})" if "twin_ms" in r else ""
        target = "-" if r["target"] is None else r["target"]
        print(f"{r['figure'].ljust(width)}  {r['value']:>8}  {target:>7}  {r['unit']:<7}  {times}")
    print(f"written to {ROOT / '.bench' / 'docker.json'}")


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 20
    results = main(count)
    if results:
        _print(results)
