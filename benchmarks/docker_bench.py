"""The Docker backend's three figures (issue 3), each a median against its bare twin in the same run.

1. Agent overhead at container start: `docker run --rm IMG /qwex/bin/qwex run --local -- true`
   against `docker run --rm IMG true`, in milliseconds (target <= 50 ms extra).
2. `qwex run --backend docker --image IMG -- true` against `docker run --rm IMG true`, as a
   ratio (target <= 1.5x).
3. Output throughput through the agent in the container against the bare command writing the
   same bytes to a file on the same bind mount, in % of the bare rate (target >= 70 %).

Twins alternate sample by sample so that a noisy neighbour hurts both alike. Run alone
(`python benchmarks/docker_bench.py [--repeat N]`: prints a table, writes .bench/docker.json)
or through `nox -s bench`, which calls `main()`.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QWEX = str(Path(sys.executable).parent / "qwex")
IMAGE = os.environ.get("QWEX_BENCH_IMAGE", "qwex-test/busybox")
OUTPUT_BYTES = 1 << 30
DOCKER_RUN = ["docker", "run", "--rm", "--network", "none"]


def timed(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def paired(
    first: Callable[[], float], second: Callable[[], float], repeat: int, warmup: int = 2
) -> tuple[float, float]:
    """Medians of two measurements taken alternately."""
    for _ in range(warmup):
        first()
        second()
    a, b = [], []
    for _ in range(repeat):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def agent_bundle() -> Path:
    """The agent for this machine, built if missing or stale."""
    from qwex_docker.bundle.build import build

    return build()


def start_overhead(agent: Path, repeat: int) -> tuple[float, float]:
    bare = [*DOCKER_RUN, IMAGE, "true"]
    with_agent = [
        *DOCKER_RUN,
        "-v",
        f"{agent}:/qwex:ro",
        IMAGE,
        "/qwex/bin/qwex",
        "run",
        "--local",
        "--",
        "true",
    ]
    return paired(lambda: timed(bare), lambda: timed(with_agent), repeat)


def cli_ratio(repeat: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "qwex.toml").write_text("")
        qwex = [QWEX, "run", "--backend", "docker", "--image", IMAGE, "--", "true"]
        return paired(
            lambda: timed([*DOCKER_RUN, IMAGE, "true"]), lambda: timed(qwex, project), repeat
        )


def throughput(agent: Path, repeat: int) -> tuple[float, float]:
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

        return paired(bare, through_agent, repeat, warmup=1)


def ready() -> str | None:
    """Why the figures cannot be measured here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI"
    probe = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no image {IMAGE} or no daemon ({probe.stderr.strip()}); run `nox -s images`"
    return None


def main(repeat: int = 15) -> list[dict[str, Any]]:
    """The three figures as {figure, value, target, unit} rows (empty when Docker is missing)."""
    problem = ready()
    if problem:
        print(f"docker figures skipped: {problem}", file=sys.stderr)
        return []
    agent = agent_bundle()
    bare_start, agent_start = start_overhead(agent, repeat)
    bare_run, qwex_run = cli_ratio(repeat)
    bare_out, agent_out = throughput(agent, max(3, repeat // 5))
    rows = [
        {
            "figure": f"docker: agent start overhead vs `docker run --rm {IMAGE} true`",
            "value": round((agent_start - bare_start) * 1000, 1),
            "target": 50,
            "unit": "ms",
        },
        {
            "figure": f"docker: `qwex run -b docker --image {IMAGE} -- true` vs `docker run --rm`",
            "value": round(qwex_run / bare_run, 2),
            "target": 1.5,
            "unit": "x",
        },
        {
            "figure": "docker: 1 GiB stdout through the agent in the container, % of bare",
            "value": round(100 * bare_out / agent_out, 1),
            "target": 70,
            "unit": "% (min)",
        },
    ]
    raw = {
        "image": IMAGE,
        "repeat": repeat,
        "docker_run_true_s": bare_start,
        "agent_run_true_s": agent_start,
        "docker_run_true_twin_s": bare_run,
        "qwex_run_true_s": qwex_run,
        "bare_1gib_s": bare_out,
        "agent_1gib_s": agent_out,
    }
    out = ROOT / ".bench" / "docker.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": os.uname().machine,
                "cpus": os.cpu_count(),
                "results": rows,
                "raw_medians": raw,
            },
            indent=2,
        )
        + "\n"
    )
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    width = max(len(r["figure"]) for r in rows)
    print(f"{'figure'.ljust(width)}  {'median':>8}  {'target':>7}  unit")
    for r in rows:
        print(f"{r['figure'].ljust(width)}  {r['value']:>8}  {r['target']:>7}  {r['unit']}")
    print(f"written to {ROOT / '.bench' / 'docker.json'}")


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 15
    results = main(count)
    if results:
        _print(results)
