"""`nox -s bench`: the speed figures of the issues, as medians, printed and written to JSON.

Not tests: nothing here asserts. Each figure is compared with its target so a
regression is visible at a glance. Run from the repository root.
"""

from __future__ import annotations

import importlib.util
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
GIB = 1 << 30


def median_seconds(fn: Callable[[], Any], repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def paired(
    fn: Callable[[], Any], twin: Callable[[], Any], repeat: int, warmup: int = 2
) -> tuple[float, float]:
    """Medians (seconds) of `fn` and its `twin`, sampled alternately so that the machine's
    drift lands on both alike."""
    for _ in range(warmup):
        fn()
        twin()
    ours, theirs = [], []
    for _ in range(repeat):
        for samples, call in ((ours, fn), (theirs, twin)):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    return statistics.median(ours), statistics.median(theirs)


IMPORT_TWIN = [sys.executable, "-c", "import click, pydantic, pluggy"]
"""The start-up twin: the import of the libraries qwex's CLI is built on."""


def run(args: list[str], cwd: Path, **kw: Any) -> None:
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, **kw)


def detach_until_id(cwd: Path) -> None:
    proc = subprocess.Popen([QWEX, "run", "-d", "--", "true"], cwd=cwd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    proc.wait()


def make_store(project: Path, count: int) -> None:
    """`count` finished runs, written the way the agent writes them."""
    from qwex_core.agent.record import transition, write_record
    from qwex_core.ids import uuid7

    runs = project / ".qwex" / "runs"
    for i in range(count):
        run_id = uuid7()
        (runs / run_id).mkdir(parents=True)
        record: dict[str, Any] = {
            "id": run_id,
            "backend": "local",
            "spec": {"command": ["python", "train.py", str(i)]},
            "created_at": "2026-11-26T10:00:00+00:00",
            "history": [],
        }
        transition(record, "pending")
        transition(record, "running")
        transition(
            record, "succeeded" if i % 3 else "failed", "exit code 0" if i % 3 else "exit code 1"
        )
        record["exit_code"] = 0 if i % 3 else 1
        write_record(runs / run_id, record)


def throughput(project: Path) -> tuple[float, float]:
    """(bare seconds, qwex seconds) to move 1 GiB of stdout."""
    sink = project / "bare.out"
    bare = median_seconds(
        lambda: run(["sh", "-c", f"head -c {GIB} /dev/zero > {sink}"], project), 3, 1
    )
    sink.unlink()

    def through_qwex() -> None:
        run([QWEX, "run", "--", "head", "-c", str(GIB), "/dev/zero"], project)
        shutil.rmtree(project / ".qwex")

    return bare, median_seconds(through_qwex, 3, 1)


def agent_peak_rss_mib(project: Path) -> float:
    """Peak RSS of the agent alone, read by a wrapper process whose only child it is."""
    from qwex_core.agent.main import command_line
    from qwex_core.runners.base import LOCAL_LAUNCHER

    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    agent = command_line(
        LOCAL_LAUNCHER,
        run_dir=str(project / "rss"),
        grace=10,
        command=["head", "-c", str(GIB), "/dev/zero"],
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *agent],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    shutil.rmtree(project / "rss")
    return int(out.stdout.split()[-1]) / 1024


def core_figures() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def ratio(figure: str, fn: Callable[[], Any], repeat: int, target: float) -> None:
        ours, twin = paired(fn, lambda: run(IMPORT_TWIN, project), repeat)
        rows.append(
            {
                "figure": figure,
                "value": round(ours / twin, 2),
                "target": target,
                "unit": "x twin",
                "ms": round(ours * 1000, 1),
                "twin": "python -c 'import click, pydantic, pluggy'",
                "twin_ms": round(twin * 1000, 1),
            }
        )

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp)
        (project / "qwex.toml").write_text("")
        quiet = {"stderr": subprocess.DEVNULL}
        ratio("qwex --help", lambda: run([QWEX, "--help"], project), 20, 0.9)
        ratio(
            "qwex run -- true (foreground, local)",
            lambda: run([QWEX, "run", "--", "true"], project, **quiet),
            20,
            2.8,
        )
        ratio(
            "qwex run -d -- true, until the id is printed",
            lambda: detach_until_id(project),
            20,
            2.5,
        )
        shutil.rmtree(project / ".qwex")
        make_store(project, 10_000)
        ratio("qwex list, 10,000 runs in the store", lambda: run([QWEX, "list"], project), 7, 4.0)
        shutil.rmtree(project / ".qwex")
        bare, through = throughput(project)
        rows.append(
            {
                "figure": "1 GiB stdout through qwex run, % of bare rate to a file",
                "value": round(100 * bare / through, 1),
                "target": 70,
                "unit": "% (min)",
                "twin": "head -c 1G /dev/zero > file",
            }
        )
        rows.append(
            {
                "figure": "agent peak memory (1 GiB of output)",
                "value": round(agent_peak_rss_mib(project), 1),
                "target": 30,
                "unit": "MiB",
            }
        )
    return rows


def met(row: dict[str, Any]) -> str:
    if row["target"] is None:
        return "-"  # reported for reference: its target is another row's
    ok = row["value"] >= row["target"] if "min" in row["unit"] else row["value"] <= row["target"]
    return "yes" if ok else "NO"


def _cluster_configured() -> bool:
    """A kubeconfig for the k8s figures: QWEX_K8S_KUBECONFIG, else the test cluster's."""
    state = os.environ.get("QWEX_K8S_STATE", "/var/lib/qwex-k8s")
    return Path(os.environ.get("QWEX_K8S_KUBECONFIG") or f"{state}/kubeconfig").is_file()


def main() -> None:
    only = set(sys.argv[1:])
    results: list[dict[str, Any]] = []
    if not only or "core" in only:
        results += core_figures()
    for part in ("cli", "docker", "k8s", "remote", "slurm", "agent"):
        extra = ROOT / "benchmarks" / f"{part}_bench.py"
        if (not only or part in only) and extra.exists():
            if part == "k8s" and not only and not _cluster_configured():
                print("k8s figures skipped: no cluster (`nox -s bench -- k8s` needs one)")
                continue
            if part == "slurm" and not only and shutil.which("sbatch") is None:
                print("slurm figures skipped: no Slurm (`nox -s bench -- slurm` needs one)")
                continue
            spec = importlib.util.spec_from_file_location(f"{part}_bench", extra)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            results += module.main()
    width = max(len(r["figure"]) for r in results)
    print(
        f"{'figure'.ljust(width)}  {'median':>8}  {'target':>8}  unit     met  ms (twin ms: twin)"
    )
    for r in results:
        twin = f": {r['twin']}" if "twin" in r else ""  # a p99 row names no twin of its own
        times = f"{r['ms']} ({r['twin_ms']}{twin})" if "twin_ms" in r else ""
        print(
            f"{r['figure'].ljust(width)}  {r['value']:>8}  {r['target'] or '-':>8}  {r['unit']:<7}  "
            f"{met(r):<3}  {times}"
        )
    out = ROOT / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": os.uname().machine, "cpus": os.cpu_count(), "results": results}, indent=2
        )
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
