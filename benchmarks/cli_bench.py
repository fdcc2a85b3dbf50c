"""What an everyday `qwex` command costs (issue 21), as a ratio to a twin timed in the same
run: each figure from samples alternated with its twin's, so that a noisy neighbour hurts
both alike, medians.

The twin of a CLI command is `python -c 'import click, pydantic, pluggy'` in the same venv:
the import of the libraries the CLI is built on. Each command is timed whole, from spawn to
exit, as a shell waits for it.

- `qwex status|logs|cancel|wait ID` on a final run (one run in the project);
- a local `qwex run -q -- true`; `qwex --help`; and beside them, for reference, the floor
  of any local run that validates its job with pydantic and starts its agent as a second
  interpreter: a Python importing the twin's libraries and `pydantic.main` (what building
  a model needs) that then starts `python -I -S -c pass` and waits for it;
- `qwex list` printing 10,000 runs; with 100,000 runs stored, `qwex list -n 20` and
  `qwex status ID` (ID: a short id, as `qwex list` shows it, of a run in the middle).
  The stores are written directly in the store's format (a record, its two logs and the
  `notified` marker a watched run leaves per run), once, and kept under .bench/stores/;
- `qwex run -b docker --image IMG -- true` against `docker run --rm IMG true`. qwex returns
  once the run's record is final, while the daemon is still removing the container (the
  `--rm` of the plain command waits for it): before the next sample, the bench waits off
  the clock until it is gone, so that the removal lands on nobody's time. A local
  `qwex run -q -- true` is the third of that alternation: what `-b docker` adds to the
  plain command is also given in local runs, (qwex - plain) / local;
- a sweep: 100 `qwex run -d -b docker --image IMG -- true` against 100 `docker run -d IMG
  true`, submitted alternately, each side's time summed; the containers are removed after;
- for reference, the floors of both Docker figures (`docker_floor.py`): a Python importing
  the twin's libraries and `pydantic.main` that creates, starts and (in the foreground)
  waits for the same container over the daemon's socket, as qwex's start does, with no
  qwex code at all; a fourth side of the foreground alternation, a third of the sweep's.

Run alone (`python benchmarks/cli_bench.py [--repeat N]`) or through `nox -s bench -- cli`,
which calls `main()`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker_bench
from sampling import alternated

ROOT = Path(__file__).resolve().parents[1]
QWEX = str(Path(sys.executable).parent / "qwex")
IMAGE = os.environ.get("QWEX_BENCH_IMAGE", "qwex-test/busybox")
TWIN = [sys.executable, "-c", "import click, pydantic, pluggy"]
TWIN_TEXT = "python -c 'import click, pydantic, pluggy'"
STORES = ROOT / ".bench" / "stores"
STORE_FORMAT = 1
"""Bumped when the generated stores change, so that a cached one is written again."""
FLOOR = [
    sys.executable,
    "-c",
    "import click, pydantic, pluggy, pydantic.main, subprocess, sys; "
    "subprocess.run([sys.executable, '-I', '-S', '-c', 'pass'], check=True)",
]
"""No qwex code at all: the twin, pydantic's model machinery, and one more interpreter."""
DOCKER_FLOOR = [sys.executable, str(Path(__file__).with_name("docker_floor.py")), IMAGE]
SWEEP = 100
LABEL = "qwex-bench=cli-sweep"


def timed(argv: list[str], cwd: Path | None = None) -> float:
    """Seconds from spawning `argv` to its exit; a failure is an error (its stderr shown)."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return seconds


def uuid7_at(ms: int) -> str:
    """A version-7 UUID of the millisecond `ms` (random tail), as the store names runs."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = ms << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & ((1 << 62) - 1))
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def record(run_id: str, number: int, ms: int) -> dict[str, Any]:
    """A final local run's record as qwex writes it (the fields of a real `run.json`)."""
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}000"
    failed = number % 3 == 0
    reason = "exit code 1" if failed else "exit code 0"
    status = "failed" if failed else "succeeded"
    return {
        "agent_pid": 1000 + number % 30000,
        "backend": "local",
        "backend_data": {},
        "created_at": at + "Z",
        "exit_code": 1 if failed else 0,
        "finished_at": at + "+00:00",
        "history": [
            {"at": at + "Z", "reason": None, "status": "pending"},
            {"at": at + "+00:00", "reason": None, "status": "running"},
            {"at": at + "+00:00", "reason": reason, "status": status},
        ],
        "host": "bench",
        "id": run_id,
        "pid": 2000 + number % 30000,
        "reason": reason,
        "short_id": run_id[-12:],
        "signal": None,
        "spec": {
            "backend": "local",
            "command": ["python", "train.py", "--seed", str(number)],
            "container": {
                "image": None,
                "mount_project": True,
                "network": None,
                "pull": False,
                "read_only_project": False,
                "user": None,
                "workdir": "/workspace",
            },
            "env": {},
            "grace_period": 10.0,
            "labels": {},
            "mounts": [],
            "name": None,
            "resources": {"cpu": None, "gpu": None, "memory": None},
            "workdir": None,
        },
        "started_at": at + "+00:00",
        "status": status,
    }


def store(count: int) -> Path:
    """A project holding `count` final runs, one a second, written once and kept."""
    project = STORES / f"runs-{count}"
    done = project / "complete"
    if done.is_file() and done.read_text() == str(STORE_FORMAT):
        return project
    if project.exists():
        shutil.rmtree(project)
    runs = project / ".qwex" / "runs"
    runs.mkdir(parents=True)
    (project / "qwex.toml").write_text("")
    first = (int(time.time()) - count - 86_400) * 1000
    for number in range(count):
        ms = first + number * 1000
        run_id = uuid7_at(ms)
        folder = f"{runs}/{run_id}"
        os.mkdir(folder)
        data = json.dumps(record(run_id, number, ms), indent=1, sort_keys=True).encode()
        for name, content in (
            ("run.json", data),
            ("stdout.log", b""),
            ("stderr.log", b""),
            ("notified", b""),
        ):
            fd = os.open(f"{folder}/{name}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, content)
            os.close(fd)
    done.write_text(str(STORE_FORMAT))
    return project


def middle_short_id(project: Path) -> str:
    ids = sorted(os.listdir(project / ".qwex" / "runs"))
    return ids[len(ids) // 2][-12:]


def row(
    figure: str, ours: float, twin: float, target: float | None, twin_text: str
) -> dict[str, Any]:
    return {
        "figure": figure,
        "value": round(ours / twin, 2),
        "target": target,
        "unit": "x twin",
        "ms": round(ours * 1000, 1),
        "twin": twin_text,
        "twin_ms": round(twin * 1000, 1),
    }


def against_twin(
    rows: list[dict[str, Any]],
    figures: dict[str, tuple[list[str], float | None]],
    cwd: Path,
    repeat: int,
) -> None:
    """Each command of `figures` (figure: (argv, target)) and the import twin, in turn."""
    samples: dict[str, Callable[[], float]] = {"twin": lambda: timed(TWIN, cwd)}
    for figure, (argv, _) in figures.items():
        samples[figure] = lambda argv=argv: timed(argv, cwd)  # type: ignore[misc]
    medians = alternated(samples, repeat, warmup=1)
    for figure, (_, target) in figures.items():
        rows.append(row(figure, medians[figure], medians["twin"], target, TWIN_TEXT))


def cli_rows(repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp).resolve()
        (project / "qwex.toml").write_text("")
        subprocess.run(
            [QWEX, "run", "-q", "--", "echo", "hello"], cwd=project, check=True, capture_output=True
        )
        run_id = os.listdir(project / ".qwex" / "runs")[0][-12:]
        against_twin(
            rows,
            {
                f"qwex {verb} ID (a final run)": ([QWEX, verb, run_id], 1.2)
                for verb in ("status", "logs", "cancel", "wait")
            }
            | {
                "qwex run -q -- true (local)": ([QWEX, "run", "-q", "--", "true"], 1.5),
                "qwex --help": ([QWEX, "--help"], 0.7),
                "floor of a local run: the twin + pydantic.main + an interpreter": (FLOOR, None),
            },
            project,
            repeat,
        )
    ten = store(10_000)
    against_twin(rows, {"qwex list, 10,000 runs printed": ([QWEX, "list"], 2.5)}, ten, repeat)
    hundred = store(100_000)
    against_twin(
        rows,
        {
            "qwex list -n 20, 100,000 runs stored": ([QWEX, "list", "-n", "20"], 1.2),
            "qwex status ID, 100,000 runs stored": (
                [QWEX, "status", middle_short_id(hundred)],
                1.2,
            ),
        },
        hundred,
        repeat,
    )
    return rows


def wait_removed(project: Path, timeout: float = 60.0) -> None:
    """Until the daemon has removed every container of the project's qwex runs."""
    deadline = time.monotonic() + timeout
    argv = ["docker", "ps", "-aq", "--filter", f"label=qwex.project={project}"]
    while subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip():
        if time.monotonic() > deadline:
            raise RuntimeError(f"qwex containers of {project} still exist after {timeout:g} s")
        time.sleep(0.02)


def docker_rows(repeat: int) -> list[dict[str, Any]]:
    problem = docker_bench.ready()
    if problem:
        print(f"docker rows of the cli figures skipped: {problem}", file=sys.stderr)
        return []
    qwex_docker = [QWEX, "run", "-q", "-b", "docker", "--image", IMAGE, "--", "true"]
    plain = ["docker", "run", "--rm", IMAGE, "true"]
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp).resolve()
        (project / "qwex.toml").write_text("")

        def ours() -> float:
            seconds = timed(qwex_docker, project)
            wait_removed(project)
            return seconds

        def floor() -> float:
            seconds = timed([*DOCKER_FLOOR, f"qwex.project={project}"])
            wait_removed(project)
            return seconds

        local = [QWEX, "run", "-q", "--", "true"]
        medians = alternated(
            {
                "qwex": ours,
                "plain": lambda: timed(plain),
                "local": lambda: timed(local, project),
                "floor": floor,
            },
            repeat,
            warmup=1,
        )
        rows = [
            row(
                f"qwex run -b docker -- true vs docker run --rm ({IMAGE})",
                medians["qwex"],
                medians["plain"],
                1.6,
                f"docker run --rm {IMAGE} true",
            ),
            {
                "figure": "what -b docker adds to docker run --rm, in local qwex runs",
                "value": round((medians["qwex"] - medians["plain"]) / medians["local"], 2),
                "target": None,
                "unit": "x local",
                "ms": round((medians["qwex"] - medians["plain"]) * 1000, 1),
                "twin": "qwex run -q -- true, same alternation",
                "twin_ms": round(medians["local"] * 1000, 1),
            },
            row(
                "floor of a Docker run: the twin + pydantic.main + create, start, wait",
                medians["floor"],
                medians["plain"],
                None,
                f"docker run --rm {IMAGE} true",
            ),
        ]
        rows += sweep(project)
    return rows


def sweep(project: Path) -> list[dict[str, Any]]:
    """SWEEP detached qwex runs against SWEEP `docker run -d`, submitted in turn, each side's
    time summed, with the floor's detached start as a third side; every container the plain
    side made is removed after (by id)."""
    ours = [QWEX, "run", "-d", "-b", "docker", "--image", IMAGE, "--", "true"]
    plain = ["docker", "run", "-d", "--label", LABEL, IMAGE, "true"]
    floor = [*DOCKER_FLOOR, f"qwex.project={project}", "--detach"]
    made: list[str] = []
    totals = {"qwex": 0.0, "plain": 0.0, "floor": 0.0}
    try:
        for _ in range(SWEEP):
            totals["qwex"] += timed(ours, project)
            start = time.perf_counter()
            out = subprocess.run(plain, capture_output=True, text=True, check=True).stdout
            totals["plain"] += time.perf_counter() - start
            made.append(out.strip())
            totals["floor"] += timed(floor)
    finally:
        for first in range(0, len(made), 50):
            subprocess.run(
                ["docker", "rm", "-f", *made[first : first + 50]],
                capture_output=True,
                check=False,
            )
        wait_removed(project, timeout=120)
    twin = f"{SWEEP} x docker run -d {IMAGE} true"
    return [
        row(
            f"{SWEEP} x qwex run -d -b docker vs {SWEEP} x docker run -d",
            totals["qwex"],
            totals["plain"],
            1.5,
            twin,
        ),
        row(
            f"floor of the sweep: {SWEEP} x the twin + pydantic.main + create, start",
            totals["floor"],
            totals["plain"],
            None,
            twin,
        ),
    ]


def main(repeat: int = 7) -> list[dict[str, Any]]:
    """The figures as {figure, value, target, unit, ms, twin, twin_ms} rows."""
    load_before = os.getloadavg()[0]
    rows = cli_rows(repeat) + docker_rows(repeat)
    load = (round(load_before, 2), round(os.getloadavg()[0], 2))
    print(
        f"cli figures: {repeat} alternated samples per twin (medians), {SWEEP} per sweep side; "
        f"load average {load[0]} -> {load[1]} on {os.cpu_count()} cores"
    )
    target = ROOT / ".bench" / "cli.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        json.dumps(
            {"machine": os.uname().machine, "cpus": os.cpu_count(), "load": load, "results": rows},
            indent=2,
        )
        + "\n"
    )
    return rows


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 7
    for r in main(count):
        print(
            f"{r['figure']:<60} {r['value']:>6} (target {r['target']})  {r['ms']} ({r['twin_ms']})"
        )
