"""The Kubernetes backend's figures (issue 10), each against its plain twin in the same run.

1. `qwex run -b k8s -- true` (busybox image, the project's snapshot) against `kubectl create
   -f job.yaml` + `kubectl wait --for=condition=complete` of the same Job (the manifest
   qwex renders, the same snapshot ConfigMap), as a ratio (target <= 1.2x).
2. API requests per run: qwex's (`QWEX_K8S_TRACE`) against kubectl's (`-v=6`) for the same
   Job, as counts.
3. From the command's end to `qwex run` returning, in seconds (target < 1 s: watch, not
   poll), with `kubectl wait`'s as the twin: the command prints the wall clock last thing
   (the node is this machine, so the clocks are one).
4. A detached submit, `qwex run -d -- true`, against `kubectl create -f` of the same Job
   (issue 21: 100 of them, target <= 1.5x), alternated submit by submit.
5. `qwex list` with 100 live runs against `kubectl get jobs` (issue 21, target <= 3x):
   bringing many live runs up to date costs one list per kind, not requests per run.
6. `qwex run --nodes 2` to both workers running, against the same Indexed Job (and its
   headless Service) made with `kubectl create -f` (issue 24, target <= 1.1x): each worker's
   command prints the wall clock first thing; the figure is from the CLI's start to the
   later of the two (the node is this machine: one clock), alternated sample by sample.

Figures 4 and 5 use Jobs whose pod no node takes (a node selector nothing matches, a
`schedule_timeout` of a day): they stay live, pending, without loading the one node with
100 pods; every Job and pod they make is deleted at the end (qwex's finalizer released).

Samples alternate. The cluster: QWEX_K8S_KUBECONFIG, else the test cluster's kubeconfig;
namespace QWEX_K8S_NAMESPACE (default qwex-test). Run alone (`python
benchmarks/k8s_bench.py [--repeat N]`) or through `nox -s bench -- k8s`, which calls `main()`.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sampling import alternated

ROOT = Path(__file__).resolve().parents[1]
QWEX = str(Path(sys.executable).parent / "qwex")
KUBECONFIG = os.environ.get("QWEX_K8S_KUBECONFIG") or str(
    Path(os.environ.get("QWEX_K8S_STATE", "/var/lib/qwex-k8s")) / "kubeconfig"
)
NAMESPACE = os.environ.get("QWEX_K8S_NAMESPACE", "qwex-test")
BUSYBOX = os.environ.get("QWEX_K8S_BUSYBOX_IMAGE", "qwex-test/busybox:latest")
PYTHON = os.environ.get("QWEX_K8S_PYTHON_IMAGE", "qwex-test/python:latest")
STAMP = "import time; print(repr(time.time()))"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}
"""What qwex runs with: the project's qwex.toml says everything (QWEX_K8S_* here name the
benchmark's cluster, and would be read as [k8s] keys)."""


def kubectl_binary() -> str:
    found = os.environ.get("QWEX_BENCH_KUBECTL") or shutil.which("kubectl")
    if found:
        return found
    cached = sorted(glob.glob("/var/cache/qwex-k8s/k8s-*/kubectl"))
    if not cached:
        raise SystemExit("no kubectl: set QWEX_BENCH_KUBECTL (the test cluster's cache has one)")
    return cached[-1]


KUBECTL = [kubectl_binary(), "--kubeconfig", KUBECONFIG, "-n", NAMESPACE]
K8S_FLOOR = str(Path(__file__).with_name("k8s_floor.py"))


def project(where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "qwex.toml").write_text(
        f'backend = "k8s"\nimage = "{BUSYBOX}"\n[k8s]\nkubeconfig = "{KUBECONFIG}"\n'
        f'namespace = "{NAMESPACE}"\nttl_seconds_after_finished = 60\n'
    )
    (where / "train.py").write_text("print('the project')\n")
    return where


def qwex_run(
    cwd: Path, *command: str, image: str = BUSYBOX, trace: bool = False
) -> tuple[float, str]:
    """Seconds `qwex run` took, and what it printed on stderr."""
    env = {**ENV, "QWEX_K8S_TRACE": "1"} if trace else ENV
    start = time.perf_counter()
    done = subprocess.run(
        [QWEX, "run", "-q", "--image", image, "--", *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"qwex run failed: {done.stderr}")
    return took, done.stderr


def last_record(cwd: Path) -> dict[str, Any]:
    out = subprocess.run(
        [QWEX, "list", "--json", "-n", "1"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env=ENV,
    )
    rec: dict[str, Any] = json.loads(out.stdout)[0]
    return rec


def twin_manifest(cwd: Path, command: list[str], image: str) -> dict[str, Any]:
    """The Job qwex would create for `command`, renamed: what the twin gives kubectl."""
    from qwex_core.models import JobSpec, Run
    from qwex_k8s import manifests
    from qwex_k8s.settings import K8sSettings

    run_id = str(uuid.uuid4())
    run = Run(
        id=run_id,
        backend="k8s",
        spec=JobSpec(command=command, backend="k8s", container={"image": image}),
        created_at="2026-01-01T00:00:00+00:00",
    )
    snapshot = last_record(cwd)["backend_data"]["snapshot"]  # the ConfigMap qwex made
    facts = manifests.Facts(NAMESPACE, cwd, cwd / ".qwex", "bench", snapshot=snapshot)
    job = manifests.job_manifest(run, K8sSettings(ttl_seconds_after_finished=60), facts)
    job["metadata"]["name"] = f"twin-{run_id[:18]}"
    return job


def kubectl_run(manifest: dict[str, Any], *, verbose: bool = False) -> tuple[float, str, str]:
    """Seconds `kubectl create -f` + `kubectl wait --for=condition=complete` took, their
    request log (with `verbose`), and the Job's name."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(manifest, fh)
    name = manifest["metadata"]["name"]
    extra = ["-v=6"] if verbose else []
    start = time.perf_counter()
    created = subprocess.run(
        [*KUBECTL, *extra, "create", "-f", fh.name], capture_output=True, text=True, check=True
    )
    waited = subprocess.run(
        [*KUBECTL, *extra, "wait", "--for=condition=complete", f"job/{name}", "--timeout=180s"],
        capture_output=True,
        text=True,
        check=True,
    )
    took = time.perf_counter() - start
    os.unlink(fh.name)
    return took, created.stderr + waited.stderr, name


def delete_job(name: str) -> None:
    subprocess.run(
        [*KUBECTL, "delete", "job", name, "--wait=false", "--cascade=background"],
        capture_output=True,
    )


KUBECTL_REQUEST = re.compile(r'"Response" verb="[A-Z]+" url="https://|\b[A-Z]+ https://')
"""A request in kubectl's `-v=6` log: `"Response" verb="GET" url="https://...` (structured, as
kubectl 1.34 prints it), or `GET https://... 200 OK` as older ones did."""


def requests(log: str, prefix: str) -> int:
    return sum(1 for line in log.splitlines() if prefix in line)


def kubectl_requests(log: str) -> int:
    return sum(1 for line in log.splitlines() if KUBECTL_REQUEST.search(line))


def main(repeat: int = 5) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qwex-k8s-bench-") as tmp:
        cwd = project(Path(tmp) / "project")
        qwex_run(cwd, "true")  # warm: the snapshot ConfigMap exists from now on
        twin = twin_manifest(cwd, ["true"], BUSYBOX)
        ours, theirs = [], []
        for i in range(repeat + 1):
            took, _ = qwex_run(cwd, "true")
            delete_job(last_record(cwd)["backend_data"]["job"])
            job = json.loads(json.dumps(twin))
            job["metadata"]["name"] = f"{twin['metadata']['name'][:20]}-{i}"
            kubectl_took, _, name = kubectl_run(job)
            delete_job(name)
            if i:  # the first pair warms both up
                ours.append(took)
                theirs.append(kubectl_took)
        q, k = statistics.median(ours), statistics.median(theirs)
        rows.append(
            {
                "figure": "k8s: qwex run -b k8s -- true vs kubectl create + wait",
                "value": round(q / k, 2),
                "target": 1.1,  # the bound: at most 1.1x the plain kubectl pair
                "unit": "x",
                "ms": round(q * 1000),
                "twin_ms": round(k * 1000),
                "twin": "kubectl create -f job.yaml && kubectl wait --for=condition=complete",
            }
        )
        _, log = qwex_run(cwd, "true", trace=True)
        delete_job(last_record(cwd)["backend_data"]["job"])
        job = json.loads(json.dumps(twin))
        job["metadata"]["name"] = f"{twin['metadata']['name'][:20]}-v"
        _, klog, name = kubectl_run(job, verbose=True)
        delete_job(name)
        rows.append(
            {
                "figure": "k8s: API requests per run (qwex; twin: kubectl create + wait)",
                "value": requests(log, "qwex-k8s: "),
                "target": kubectl_requests(klog) + 4,
                "unit": "count",
                "twin": f"kubectl -v=6: {kubectl_requests(klog)} requests",
            }
        )
        lag, kubectl_lag = [], []
        python_job = twin_manifest(cwd, ["python", "-c", STAMP], PYTHON)
        for i in range(max(3, repeat // 2)):
            subprocess.run(
                [QWEX, "run", "--image", PYTHON, "--", "python", "-c", STAMP],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
                env=ENV,
            )
            returned = time.time()
            rec = last_record(cwd)
            printed = float(Path(cwd / ".qwex" / "runs" / rec["id"] / "stdout.log").read_text())
            lag.append(returned - printed)
            delete_job(rec["backend_data"]["job"])
            job = json.loads(json.dumps(python_job))
            job["metadata"]["name"] = f"{python_job['metadata']['name'][:20]}-p{i}"
            kubectl_run(job)
            returned = time.time()
            logs = subprocess.run(
                [*KUBECTL, "logs", f"job/{job['metadata']['name']}", "-c", "main"],
                capture_output=True,
                text=True,
                check=True,
            )
            kubectl_lag.append(returned - float(logs.stdout.strip().splitlines()[-1]))
            delete_job(job["metadata"]["name"])
        q, k = statistics.median(lag), statistics.median(kubectl_lag)
        rows.append(
            {
                "figure": "k8s: command end to qwex run returning",
                "value": round(q, 2),
                "target": 1.0,
                "unit": "s",
                "ms": round(q * 1000),
                "twin_ms": round(k * 1000),
                "twin": "the same to kubectl wait returning",
            }
        )
    rows += many_runs()
    rows.append(gang_start(repeat))
    return rows


def gang_start(repeat: int = 5) -> dict[str, Any]:
    """Figure 6: from `qwex run --nodes 2` to both workers' commands running, against the
    same Indexed Job and headless Service made with kubectl (the command prints the time
    it starts at: the later of the two workers' is when both run; the CLIs' waits for the
    end are off the clock)."""
    from qwex_core.models import JobSpec, Run
    from qwex_k8s import manifests
    from qwex_k8s.settings import K8sSettings

    with tempfile.TemporaryDirectory(prefix="qwex-k8s-gang-") as tmp:
        cwd = project(Path(tmp) / "project")
        command = ["python", "-c", STAMP]
        # The snapshot ConfigMap exists from now on, owned by qwex's Jobs (each kept for its
        # TTL, a minute: the twin's pods mount the ConfigMap, which goes with its last owner).
        qwex_run(cwd, "true")
        snapshot = last_record(cwd)["backend_data"]["snapshot"]

        def ours() -> float:
            start = time.time()
            subprocess.run(
                [QWEX, "run", "-q", "--image", PYTHON, "--nodes", "2", "--", *command],
                cwd=cwd,
                capture_output=True,
                text=True,
                check=True,
                env=ENV,
            )
            rec = last_record(cwd)
            run_dir = cwd / ".qwex" / "runs" / rec["id"] / "workers"
            stamps = [float((run_dir / f"{rank}.log").read_text()) for rank in (0, 1)]
            return max(stamps) - start

        def theirs() -> float:
            run_id = str(uuid.uuid4())
            run = Run(
                id=run_id,
                backend="k8s",
                spec=JobSpec(command=command, backend="k8s", nodes=2, container={"image": PYTHON}),
                created_at="2026-01-01T00:00:00+00:00",
            )
            facts = manifests.Facts(NAMESPACE, cwd, cwd / ".qwex", "bench", snapshot=snapshot)
            job = manifests.job_manifest(run, K8sSettings(ttl_seconds_after_finished=60), facts)
            job["spec"]["template"]["metadata"].pop("finalizers")  # nothing to release after
            name = job["metadata"]["name"]
            service = manifests.service_manifest(run, NAMESPACE, {})
            del service["metadata"]["ownerReferences"]
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
                json.dump({"apiVersion": "v1", "kind": "List", "items": [job, service]}, fh)
            start = time.time()
            subprocess.run([*KUBECTL, "create", "-f", fh.name], capture_output=True, check=True)
            subprocess.run(
                [*KUBECTL, "wait", "--for=condition=complete", f"job/{name}", "--timeout=180s"],
                capture_output=True,
                check=True,
            )
            stamps = []
            for rank in (0, 1):
                selector = f"{manifests.LABEL_RUN_ID}={run_id},{manifests.INDEX_LABEL}={rank}"
                out = subprocess.run(
                    [*KUBECTL, "logs", "-l", selector, "-c", "main"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                stamps.append(float(out.stdout.strip().splitlines()[-1]))
            os.unlink(fh.name)
            subprocess.run(
                [*KUBECTL, "delete", "service", name, "--wait=false"], capture_output=True
            )
            delete_job(name)
            return max(stamps) - start

        took = alternated({"qwex": ours, "kubectl": theirs}, repeat, warmup=1)
    q, k = took["qwex"], took["kubectl"]
    return {
        "figure": "k8s: qwex run --nodes 2 to both workers running vs kubectl create of the "
        "same Indexed Job",
        "value": round(q / k, 2),
        "target": 1.1,
        "unit": "x",
        "ms": round(q * 1000),
        "twin_ms": round(k * 1000),
        "twin": "kubectl create -f job+service.json; both pods' commands start",
    }


MANY = 100
"""Live runs of figure 5, submits of figure 4."""
NOWHERE = {"qwex.dev/bench": "nowhere"}
"""A node selector no node matches: the Job's pod stays pending, the run live."""


def pending_project(where: Path) -> Path:
    """A project whose runs stay live and pending (see `NOWHERE`)."""
    project(where)
    (where / "qwex.toml").write_text(
        (where / "qwex.toml").read_text()
        + "schedule_timeout = 86400\n"
        + "node_selector = { "
        + ", ".join(f'"{k}" = "{v}"' for k, v in NOWHERE.items())
        + " }\n"
    )
    return where


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, env=ENV, capture_output=True)
    return time.perf_counter() - start


def live_runs(cwd: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [QWEX, "list", "--json"], cwd=cwd, capture_output=True, text=True, check=True, env=ENV
    )
    return [r for r in json.loads(out.stdout) if r["status"] not in FINAL]


FINAL = {"succeeded", "failed", "cancelled", "lost"}


def clean_up(run_ids: list[str], twins: list[str]) -> None:
    """Delete the Jobs of `run_ids` and the `twins`, and release qwex's finalizer from their
    pods (pending, never started: nothing of them to keep)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = config.new_client_from_config(KUBECONFIG)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    for name in [f"qwex-{i}" for i in run_ids] + twins:
        try:
            batch.delete_namespaced_job(name, NAMESPACE, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
    names = {f"qwex-{i}" for i in run_ids} | set(twins)
    for _ in range(30):
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="qwex.dev/run-id").items
        held = [p for p in pods if p.metadata.labels.get("batch.kubernetes.io/job-name") in names]
        for pod in held:
            if pod.metadata.finalizers:
                patch = {"metadata": {"finalizers": None}}
                try:
                    core.patch_namespaced_pod(pod.metadata.name, NAMESPACE, patch)
                except ApiException as exc:
                    if exc.status != 404:
                        raise
        if not held:
            return
        time.sleep(1)


def many_runs(repeat: int = MANY) -> list[dict[str, Any]]:
    """Figures 4 and 5: `repeat` detached submits, each alternated with a `kubectl create
    -f` of the same Job; then `qwex list` with the live runs they left, alternated with
    `kubectl get jobs`."""
    rows: list[dict[str, Any]] = []
    twins: list[str] = []
    with tempfile.TemporaryDirectory(prefix="qwex-k8s-bench-") as tmp:
        cwd = pending_project(Path(tmp) / "project")
        submit = [QWEX, "run", "-d", "--", "true"]
        try:
            timed(submit, cwd)  # the snapshot ConfigMap exists from now on
            manifest = twin_manifest(cwd, ["true"], BUSYBOX)
            manifest["spec"]["template"]["spec"]["nodeSelector"] = dict(NOWHERE)
            folder = Path(tmp) / "twins"
            folder.mkdir()

            def next_job(tag: str) -> str:
                """A file of the same Job under a new name, which is cleaned up after."""
                job = json.loads(json.dumps(manifest))
                job["metadata"]["name"] = f"{manifest['metadata']['name'][:20]}-{tag}{len(twins)}"
                path = folder / f"{tag}{len(twins)}.json"
                path.write_text(json.dumps(job))
                twins.append(job["metadata"]["name"])
                return str(path)

            def kubectl_create() -> float:
                return timed([*KUBECTL, "create", "-f", next_job("")], cwd)

            def floor_create() -> float:
                return timed([sys.executable, K8S_FLOOR, KUBECONFIG, NAMESPACE, next_job("f")], cwd)

            got = alternated(
                {
                    "qwex": lambda: timed(submit, cwd),
                    "kubectl": kubectl_create,
                    "floor": floor_create,
                },
                repeat,
            )
            q, k = got["qwex"], got["kubectl"]
            rows.append(
                {
                    "figure": f"k8s: {repeat} x qwex run -d -- true vs kubectl create -f",
                    "value": round(q / k, 2),
                    "target": 1.5,
                    "unit": "x twin",
                    "ms": round(q * 1000, 1),
                    "twin_ms": round(k * 1000, 1),
                    "twin": "kubectl create -f job.json of the same Job (per submit, median)",
                }
            )
            rows.append(
                {
                    "figure": "k8s: floor of a detached submit: the twin + pydantic.main + "
                    "kubeconfig, TLS, POST",
                    "value": round(got["floor"] / k, 2),
                    "target": None,
                    "unit": "x twin",
                    "ms": round(got["floor"] * 1000, 1),
                    "twin_ms": round(k * 1000, 1),
                    "twin": "kubectl create -f job.json of the same Job (per submit, median)",
                }
            )
            clean_up([], twins)
            live = live_runs(cwd)
            got = alternated(
                {
                    "qwex": lambda: timed([QWEX, "list"], cwd),
                    "kubectl": lambda: timed([*KUBECTL, "get", "jobs"], cwd),
                },
                max(5, repeat // 10),
            )
            q, k = got["qwex"], got["kubectl"]
            rows.append(
                {
                    "figure": f"k8s: qwex list, {len(live)} live runs, vs kubectl get jobs",
                    "value": round(q / k, 2),
                    "target": 3.0,
                    "unit": "x twin",
                    "ms": round(q * 1000, 1),
                    "twin_ms": round(k * 1000, 1),
                    "twin": "kubectl get jobs (the namespace)",
                }
            )
        finally:
            records = Path(cwd / ".qwex" / "runs")
            ids = [p.name for p in records.iterdir()] if records.is_dir() else []
            clean_up(ids, twins)
    return rows


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 5
    if "--many" in sys.argv:
        for row in many_runs(count):
            print(json.dumps(row))
        raise SystemExit(0)
    results = main(count)
    for row in results:
        print(json.dumps(row))
    out = ROOT / ".bench" / "k8s.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
