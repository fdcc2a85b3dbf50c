"""The qwex server's figures (issue 11), each from samples alternated with its twin in the
same run, against real `qwex serve` processes on loopback (SQLite, the default database).

1. `POST /jobs` accepted per second, 16 concurrent clients (accepted, not finished), and
   its p99, against `GET /api/v1/health` under the same load on the same server (target:
   at least 25 % of the twin's rate). Measured on a server with `concurrency = 0`: it
   only queues, so the jobs' own work does not land on the API's time.
2. `GET /jobs` (first page, 50 jobs) with 100,000 jobs stored, against `GET /health`,
   one request at a time (target: at most 3x its latency). The jobs are inserted through
   the server's tables, not by 100,000 requests.
3. A line printed by a job until the follower has it (target: under 100 ms), as
   `qwex logs -f` prints it (the remote runner) and, for reference, as the server's
   follow stream (SSE) sends it. The job prints a timestamp every 0.23 s for 6 s, so
   lines after the server's first two seconds of following count too.
4. `qwex run --backend remote -- true` on a server whose backend is local, against
   `qwex run -- true` (target: at most 2x); then one run's phases (QWEX_TIMINGS).
5. `GET /health` and `GET /jobs` while 1,000 follow streams of running jobs are open
   (4 jobs printing a line every 0.5 s, 250 followers each, held by one asyncio process),
   against the same requests on the same server without followers, measured before and
   after (target: at most 2x each). Loopback only; the open-files limit is raised to the
   hard limit for the bench and the server it starts.
6. `qwex list` with 100 live remote runs (jobs waiting in the queue of a server with
   `concurrency = 0`), against `curl` of `GET /api/v1/jobs?limit=100` on the same server
   (target: at most 3x): bringing many live runs up to date costs one listing of the
   server's live jobs, not requests per run.
7. The dashboard's runs page (first page, 50 runs, rendered on the server) with 100,000
   jobs stored, signed in with a session cookie, against `GET /api/v1/jobs` (the same 50
   jobs as JSON) on the same server, one request at a time (target: at most 2x).
8. A line printed by a job until the dashboard's run page shows it, in Debian's headless
   Chromium (a MutationObserver on the log records when each line lands; target: under
   a second, as the browser test asserts). Left out, and said so, without Chromium.

Run alone (`python benchmarks/remote_bench.py [--repeat N]`) or through
`nox -s bench -- remote`, which calls `main()`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sampling import alternated

ROOT = Path(__file__).resolve().parents[1]
QWEX = str(Path(sys.executable).parent / "qwex")
CLIENTS = 16
STORED_JOBS = 100_000
PRINTER = (
    "import time\n"
    "time.sleep(1.0)\n"
    "for i in range(26):\n"
    "    print(repr(time.time()), flush=True)\n"
    "    time.sleep(0.23)\n"
)
"""The job of figure 3: a timestamp a line, the first after a second (the follower is
connected by then), the last 7 s in."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}
    return {**env, "XDG_CONFIG_HOME": str(home / "xdg"), **extra}


class Server:
    """A `qwex serve` on loopback, its project and data under `root`."""

    def __init__(self, root: Path, concurrency: int) -> None:
        self.root = root
        self.project = root / "server"
        self.data = root / "data"
        self.project.mkdir(parents=True)
        (self.project / "qwex.toml").write_text(
            '[server]\nbackends = ["local"]\ndefault_backend = "local"\n'
            f"concurrency = {concurrency}\n"
        )
        self.port = free_port()
        self.env = clean_env(root)
        token = subprocess.run(
            [QWEX, "serve", "token", "add", "bench", "--data-dir", str(self.data)],
            cwd=self.project,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.token = token.stdout.strip()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        log = open(self.root / "serve.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [QWEX, "serve", "--port", str(self.port), "--data-dir", str(self.data)],
            cwd=self.project,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if Connection(self).get("/api/v1/health")[0] == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"qwex serve did not start: {(self.root / 'serve.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Connection:
    """One keep-alive HTTP/1.1 connection (the stdlib's: cheap on the client side)."""

    def __init__(self, server: Server) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        self.headers = {"Authorization": f"Bearer {server.token}"}

    def get(self, path: str) -> tuple[int, bytes]:
        self.conn.request("GET", path, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        headers = {**self.headers, "Content-Type": "application/json"}
        self.conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()


@contextlib.contextmanager
def running(root: Path, concurrency: int) -> Iterator[Server]:
    server = Server(root, concurrency).start()
    try:
        yield server
    finally:
        server.stop()


# -- 1. POST /jobs under load ---------------------------------------------------------


def burst(
    server: Server, per_client: int, call: Callable[[Connection, int, int], int]
) -> tuple[float, list[float]]:
    """(requests per second, latencies) of CLIENTS threads making `per_client` calls each."""
    conns = [Connection(server) for _ in range(CLIENTS)]
    for conn in conns:  # connected off the clock
        conn.get("/api/v1/health")
    latencies: list[list[float]] = [[] for _ in conns]
    failed: list[int] = []
    gate = threading.Barrier(CLIENTS + 1)

    def client(n: int) -> None:
        gate.wait()
        for i in range(per_client):
            start = time.perf_counter()
            status = call(conns[n], n, i)
            latencies[n].append(time.perf_counter() - start)
            if status not in (200, 201):
                failed.append(status)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    gate.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for conn in conns:
        conn.conn.close()
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. HTTP {failed[0]}")
    return CLIENTS * per_client / elapsed, [s for one in latencies for s in one]


def submit_rate(server: Server, repeat: int, per_client: int = 25) -> dict[str, Any]:
    rounds = iter(range(1 << 30))

    def health(conn: Connection, _n: int, _i: int) -> int:
        return conn.get("/api/v1/health")[0]

    def submit_burst() -> tuple[float, list[float]]:
        tag = next(rounds)

        def submit(conn: Connection, n: int, i: int) -> int:
            body = {"submission_id": f"b{tag}-{n}-{i}", "command": ["true"]}
            return conn.post("/api/v1/jobs", body)[0]

        return burst(server, per_client, submit)

    samples: dict[str, list[tuple[float, list[float]]]] = {"health": [], "submit": []}
    for i in range(repeat + 1):
        for name, take in (
            ("health", lambda: burst(server, per_client, health)),
            ("submit", submit_burst),
        ):
            taken = take()
            if i:  # the first round warms up
                samples[name].append(taken)

    def p99(name: str) -> float:
        every = sorted(s for _, lat in samples[name] for s in lat)
        return every[int(0.99 * (len(every) - 1))]

    return {
        name: {"rate": statistics.median(r for r, _ in samples[name]), "p99": p99(name)}
        for name in samples
    }


# -- 2. GET /jobs with 100,000 jobs ----------------------------------------------------------


def store_jobs(data: Path, count: int) -> None:
    """`count` finished jobs written straight into the server's database."""
    from datetime import UTC, datetime, timedelta

    from qwex_core.ids import uuid7
    from qwex_remote.server.db import open_database
    from qwex_remote.server.tables import Job
    from sqlalchemy import insert

    sessions = open_database(f"sqlite:///{data / 'server.db'}")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    spec = {"command": ["python", "train.py"], "env": {}, "labels": {}, "grace_period": 10.0}
    with sessions.begin() as session:
        for first in range(0, count, 10_000):
            rows = [
                {
                    "id": uuid7(),
                    "submission_id": f"stored-{i}",
                    "submitter": f"user{i % 7}",
                    "spec": {**spec, "command": ["python", "train.py", str(i)]},
                    "spec_hash": f"{i:064x}",
                    "backend": "local",
                    "status": "succeeded" if i % 3 else "failed",
                    "exit_code": 0 if i % 3 else 1,
                    "reason": None if i % 3 else "exit code 1",
                    "created_at": start + timedelta(seconds=i),
                    "started_at": start + timedelta(seconds=i, milliseconds=50),
                    "finished_at": start + timedelta(seconds=i + 1),
                    "claimed_by": "bench",
                }
                for i in range(first, min(first + 10_000, count))
            ]
            session.execute(insert(Job), rows)
    sessions.kw["bind"].dispose()


def list_latency(server: Server, repeat: int) -> dict[str, float]:
    conn = Connection(server)
    calls = {"health": "/api/v1/health", "list": "/api/v1/jobs"}
    taken: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(repeat + 5):
        for name, path in calls.items():
            start = time.perf_counter()
            status, body = conn.get(path)
            seconds = time.perf_counter() - start
            assert status == 200, body[:200]
            if i >= 5:
                taken[name].append(seconds)
    items = json.loads(conn.get("/api/v1/jobs")[1])["items"]
    assert len(items) == 50, len(items)
    return {name: statistics.median(values) for name, values in taken.items()}


# -- 7. the dashboard's runs page with 100,000 jobs -----------------------------------------


def session_cookie(server: Server) -> str:
    """Sign in on the dashboard's form with the bench token: its session cookie."""
    from urllib.parse import urlencode

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    body = urlencode({"token": server.token})
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    conn.request("POST", "/signin", body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    cookie = answer.getheader("set-cookie") or ""
    assert answer.status == 303 and cookie.startswith("qwex_session="), answer.status
    return cookie.split(";", 1)[0]


def page_latency(server: Server, repeat: int) -> dict[str, float]:
    """Median seconds of the runs page and of `GET /api/v1/jobs`, alternated."""
    api = Connection(server)
    page = Connection(server)
    page.headers = {"Cookie": session_cookie(server)}

    def sample(conn: Connection, path: str, marker: bytes) -> Callable[[], float]:
        def once() -> float:
            start = time.perf_counter()
            status, body = conn.get(path)
            seconds = time.perf_counter() - start
            assert status == 200 and marker in body, (status, body[:200])
            return seconds

        return once

    return alternated(
        {
            "page": sample(page, "/", b'class="run-row'),
            "api": sample(api, "/api/v1/jobs", b'"items"'),
        },
        repeat,
        warmup=5,
    )


# -- 3. a printed line until the follower has it ------------------------------------------


def lags(lines: list[tuple[float, str]]) -> list[float]:
    """Seconds from each timestamp a job printed to when the follower had that line."""
    out = []
    for seen, text in lines:
        with contextlib.suppress(ValueError):
            out.append(seen - float(text))
    return out


def sse_lags(server: Server) -> list[float]:
    """The follow stream (SSE) of a job printing timestamps, read as it comes."""
    conn = Connection(server)
    status, body = conn.post(
        "/api/v1/jobs",
        {"submission_id": f"sse-{time.time_ns()}", "command": [sys.executable, "-c", PRINTER]},
    )
    assert status == 201, body
    job = json.loads(body)["id"]
    conn.conn.request("GET", f"/api/v1/jobs/{job}/logs/follow", headers=conn.headers)
    response = conn.conn.getresponse()
    seen: list[tuple[float, str]] = []
    pending = ""
    for raw in response:
        now = time.time()
        line = raw.decode().rstrip("\n")
        if line.startswith("event: end"):
            break
        if line.startswith("data: "):
            data = json.loads(line[6:])
            pending += data.get("data", "")
            *complete, pending = pending.split("\n")
            seen += [(now, text) for text in complete]
    conn.conn.close()
    return lags(seen)


def logs_f_lags(project: Path, env: dict[str, str]) -> list[float]:
    """`qwex logs -f` of a job submitted with `qwex run -d -b remote`."""
    started = subprocess.run(
        [QWEX, "run", "-d", "-b", "remote", "--", sys.executable, "-c", PRINTER],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    run_id = started.stdout.split()[0]
    follow = subprocess.Popen(
        [QWEX, "logs", "-f", run_id], cwd=project, env=env, stdout=subprocess.PIPE, text=True
    )
    assert follow.stdout is not None
    seen = [(time.time(), line.rstrip("\n")) for line in follow.stdout]
    follow.wait()
    return lags(seen)


# -- 8. a printed line until the dashboard's page shows it ---------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
OBSERVE = """
window.__seen = []; window.__since = Date.now() / 1000;
const log = document.getElementById('log'); let done = 0;
new MutationObserver(() => {
  const now = Date.now() / 1000, lines = log.textContent.split('\\n');
  for (; done < lines.length - 1; done++) window.__seen.push([now, lines[done]]);
}).observe(log, {childList: true, subtree: true, characterData: true});
return window.__since;
"""
"""Run in the page (by the driver, outside the page's CSP): each complete line of the log
with the moment it reached the page, as a person would see it."""


def page_lags(server: Server) -> list[float] | None:
    """Figure 8: a job printing timestamps, followed in the run's page in headless Chromium
    (Debian's, through its chromedriver); None without them. Only lines printed after the
    page watches count (not its backlog)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return None
    beside = os.environ.get("QWEX_BENCH_SELENIUM")  # not in the venv qwex runs from (noxfile)
    if beside and beside not in sys.path:
        sys.path.append(beside)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        name, _, value = session_cookie(server).partition("=")
        driver.get(server.base + "/signin")
        driver.add_cookie({"name": name, "value": value, "path": "/"})
        conn = Connection(server)
        body = {
            "submission_id": f"page-{time.time_ns()}",
            "command": [sys.executable, "-c", PRINTER],
        }
        status, answer = conn.post("/api/v1/jobs", body)
        assert status == 201, answer
        job = json.loads(answer)["id"]
        driver.get(f"{server.base}/runs/{job}")
        since = float(driver.execute_script(OBSERVE))
        deadline = time.time() + 30
        while time.time() < deadline:
            status, answer = conn.get(f"/api/v1/jobs/{job}")
            if json.loads(answer)["status"] in ("succeeded", "failed", "cancelled", "lost"):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # the last line's way to the page
        seen = driver.execute_script("return window.__seen")
    finally:
        driver.quit()
    printed = lags([(float(at), str(text)) for at, text in seen])
    late = [(float(at), str(text)) for at, text in seen if _stamp(str(text)) > since]
    return lags(late) if late else printed


def _stamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


# -- 4. qwex run -b remote -----------------------------------------------------------------


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def run_overhead(project: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    argv = {
        "local": [QWEX, "run", "--", "true"],
        "remote": [QWEX, "run", "--backend", "remote", "--", "true"],
    }
    return alternated(
        {name: lambda args=args: timed(args, project, env) for name, args in argv.items()}, repeat
    )


def phases(project: Path, env: dict[str, str]) -> list[tuple[str, float]]:
    """Milliseconds since spawn of each phase one `qwex run -b remote -- true` marks."""
    marks = project / "timings.txt"
    marks.unlink(missing_ok=True)
    spawned = time.time()
    subprocess.run(
        [QWEX, "run", "--backend", "remote", "--", "true"],
        cwd=project,
        env={**env, "QWEX_TIMINGS": str(marks)},
        check=True,
        capture_output=True,
    )
    returned = time.time()
    out = [(line.split()[1], float(line.split()[2])) for line in marks.read_text().splitlines()]
    return [(phase, (at - spawned) * 1000) for phase, at in [*out, ("returned", returned)]]


# -- 5. the API under 1,000 open follow streams --------------------------------------------

FOLLOWERS = 1000
FOLLOWED_JOBS = 4
TICKER = (
    "import time\nfor i in range(240):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"
)
"""A followed job: a line every 0.5 s for at most 2 minutes (cancelled when measured)."""
HOLDER = """
import asyncio, sys, time

port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
jobs = sys.argv[4:]


async def follow(i, ready):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    job = jobs[i % len(jobs)]
    writer.write(
        f"GET /api/v1/jobs/{job}/logs/follow HTTP/1.1\\r\\nHost: bench\\r\\n"
        f"Authorization: Bearer {token}\\r\\n\\r\\n".encode()
    )
    got = b""
    while b"event: log" not in got:
        part = await reader.read(65536)
        if not part:
            raise ConnectionError("a follow stream closed before its first line")
        got += part
    ready.append(i)
    while await reader.read(65536):
        pass


async def main():
    ready = []
    tasks = [asyncio.create_task(follow(i, ready)) for i in range(count)]
    deadline = time.monotonic() + 120
    while len(ready) < count and time.monotonic() < deadline:
        failed = [t for t in tasks if t.done()]
        if failed:
            failed[0].result()
        await asyncio.sleep(0.05)
    print("ready", len(ready), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print("open", sum(not t.done() for t in tasks), flush=True)


asyncio.run(main())
"""
"""Holds `count` follow streams open, reading each (as a client would), until its stdin
closes; says `ready N` once every stream got its first line, and `open N` at the end."""


def raise_open_files(want: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def api_latency(server: Server, samples: int) -> dict[str, float]:
    """Median seconds of `GET /health` and `GET /jobs`, alternated, one at a time."""
    conn = Connection(server)
    calls = {"health": "/api/v1/health", "list": "/api/v1/jobs"}
    taken: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(samples + 3):
        for name, path in calls.items():
            start = time.perf_counter()
            status, body = conn.get(path)
            seconds = time.perf_counter() - start
            assert status == 200, body[:200]
            if i >= 3:
                taken[name].append(seconds)
    conn.conn.close()
    return {name: statistics.median(values) for name, values in taken.items()}


def followed_latency(server: Server, samples: int) -> dict[str, Any]:
    """Figure 5: idle latency (before and after), then with `FOLLOWERS` streams open."""
    conn = Connection(server)
    jobs = []
    for n in range(FOLLOWED_JOBS):
        command = [sys.executable, "-c", TICKER]
        status, body = conn.post(
            "/api/v1/jobs", {"submission_id": f"tick-{n}-{time.time_ns()}", "command": command}
        )
        assert status == 201, body
        jobs.append(json.loads(body)["id"])
    deadline = time.monotonic() + 60
    while any(json.loads(conn.get(f"/api/v1/jobs/{j}")[1])["status"] != "running" for j in jobs):
        assert time.monotonic() < deadline, "the followed jobs never ran"
        time.sleep(0.1)
    before = api_latency(server, samples)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(server.port), server.token, str(FOLLOWERS), *jobs],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        opened = time.perf_counter()
        ready = holder.stdout.readline().split()
        open_s = time.perf_counter() - opened
        assert ready == ["ready", str(FOLLOWERS)], ready
        loaded = api_latency(server, samples)
        holder.stdin.close()
        still = holder.stdout.readline().split()
        assert still == ["open", str(FOLLOWERS)], still  # none was dropped meanwhile
        holder.wait(30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    after = api_latency(server, samples)
    conn.conn.close()  # idle meanwhile: the server may have closed it
    conn = Connection(server)
    for job in jobs:
        conn.post(f"/api/v1/jobs/{job}/cancel", {})
    conn.conn.close()
    idle = {k: statistics.median([before[k], after[k]]) for k in before}
    return {
        "idle_before": before,
        "idle_after": after,
        "idle": idle,
        "loaded": loaded,
        "open_s": open_s,
    }


# -- 6. qwex list with 100 live remote runs -------------------------------------------------

LIVE_RUNS = 100
SUBMIT_MANY = """
import sys
from pathlib import Path
from qwex_core.jobs import overrides
from qwex_core.service import open_service

service = open_service(Path.cwd(), flags=overrides({"backend": "remote"}))
for _ in range(int(sys.argv[1])):
    service.submit(service.job(["true"]))
"""
"""Submits detached remote runs through the product's own path, in one process."""


LISTING_FLOOR = f"""
import sys
import click, pluggy, httpx
client = httpx.Client(verify=False)  # plain http, as qwex's adapter makes it: no CA store
answer = client.get(
    sys.argv[1] + "/api/v1/jobs?limit={LIVE_RUNS}",
    headers={{"Authorization": "Bearer " + sys.argv[2]}},
)
answer.raise_for_status()
sys.stdout.write(answer.text)
"""
"""The floor of figure 6: a Python that imports what any qwex command needs (click, pluggy)
and the remote backend's HTTP client, makes the same request as the curl twin, and prints
the answer. No qwex code."""


def live_listing(root: Path, repeat: int) -> dict[str, float]:
    """Figure 6: medians of `qwex list`, of `curl GET /jobs` and of its floor, alternated."""
    with running(root / "live", concurrency=0) as server:
        project = root / "live-laptop"
        project.mkdir()
        (project / "qwex.toml").write_text(f'[remote]\nbase_url = "{server.base}"\n')
        env = clean_env(root, QWEX_REMOTE_TOKEN=server.token)
        subprocess.run(
            [sys.executable, "-c", SUBMIT_MANY, str(LIVE_RUNS)], cwd=project, env=env, check=True
        )
        argv = {
            "list": [QWEX, "list"],
            "curl": [
                "curl",
                "-sf",
                "-H",
                f"Authorization: Bearer {server.token}",
                f"{server.base}/api/v1/jobs?limit={LIVE_RUNS}",
            ],
            "floor": [sys.executable, "-c", LISTING_FLOOR, server.base, server.token],
        }
        medians = alternated(
            {name: lambda args=args: timed(args, project, env) for name, args in argv.items()},
            repeat,
        )
        listed = subprocess.run(
            [QWEX, "list", "-q"], cwd=project, env=env, check=True, capture_output=True, text=True
        )
        assert len(listed.stdout.split()) == LIVE_RUNS, listed.stdout
        return medians


# -- the figures ---------------------------------------------------------------------------


def live_rows(live: dict[str, float]) -> list[dict[str, Any]]:
    """Figure 6's rows: the listing and its floor, each against curl."""
    return [
        {
            "figure": f"remote: `qwex list`, {LIVE_RUNS} live remote runs",
            "value": round(live["list"] / live["curl"], 2),
            "target": 3.0,
            "unit": "x twin",
            "ms": round(live["list"] * 1000, 1),
            "twin": f"curl GET /api/v1/jobs?limit={LIVE_RUNS}",
            "twin_ms": round(live["curl"] * 1000, 1),
        },
        {
            "figure": "remote: floor of that listing: click, pluggy, httpx and the same GET",
            "value": round(live["floor"] / live["curl"], 2),
            "target": None,
            "unit": "x twin",
            "ms": round(live["floor"] * 1000, 1),
            "twin": f"curl GET /api/v1/jobs?limit={LIVE_RUNS}",
            "twin_ms": round(live["curl"] * 1000, 1),
        },
    ]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def main(repeat: int = 10) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    raise_open_files(4 * FOLLOWERS + 1024)  # inherited by the server and the stream holder
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp).resolve()
        queue_only = Server(root / "queue", concurrency=0)
        store_jobs(queue_only.data, STORED_JOBS)
        queue_only.start()
        try:
            listed = list_latency(queue_only, max(30, repeat * 5))
            page = page_latency(queue_only, max(30, repeat * 5))
            load = submit_rate(queue_only, repeat)
        finally:
            queue_only.stop()
        with running(root / "work", concurrency=4) as server:
            project = root / "laptop"
            project.mkdir()
            (project / "qwex.toml").write_text(f'[remote]\nbase_url = "{server.base}"\n')
            env = clean_env(root, QWEX_REMOTE_TOKEN=server.token)
            sse = sse_lags(server)
            logs_f = logs_f_lags(project, env)
            cli = run_overhead(project, env, repeat)
            marks = phases(project, env)
            followed = followed_latency(server, max(30, repeat * 5))
            in_page = page_lags(server)
        live = live_listing(root, repeat)
    load_after = os.getloadavg()[0]
    h, s = load["health"], load["submit"]
    rows += live_rows(live)
    rows += [
        {
            "figure": f"remote: POST /jobs accepted/s, {CLIENTS} clients, % of GET /health's",
            "value": round(100 * s["rate"] / h["rate"], 1),
            "target": 25,
            "unit": "% (min)",
            "ms": round(1000 / s["rate"], 2),
            "twin": "GET /api/v1/health, same load",
            "twin_ms": round(1000 / h["rate"], 2),
        },
        {
            "figure": f"remote: POST /jobs p99 latency, {CLIENTS} clients (GET /health's)",
            "value": round(s["p99"] * 1000, 1),
            "target": None,
            "unit": "ms",
            "ms": round(s["p99"] * 1000, 1),
            "twin_ms": round(h["p99"] * 1000, 1),
        },
        {
            "figure": f"remote: GET /jobs first page, {STORED_JOBS:,} jobs stored",
            "value": round(listed["list"] / listed["health"], 2),
            "target": 3.0,
            "unit": "x twin",
            "ms": round(listed["list"] * 1000, 2),
            "twin": "GET /api/v1/health",
            "twin_ms": round(listed["health"] * 1000, 2),
        },
        {
            "figure": f"remote: the dashboard's runs page, {STORED_JOBS:,} jobs stored",
            "value": round(page["page"] / page["api"], 2),
            "target": 2.0,
            "unit": "x twin",
            "ms": round(page["page"] * 1000, 2),
            "twin": "GET /api/v1/jobs (the same 50 jobs as JSON)",
            "twin_ms": round(page["api"] * 1000, 2),
        },
        {
            "figure": "remote: a job's line until `qwex logs -f` prints it (median)",
            "value": round(statistics.median(logs_f) * 1000, 1),
            "target": 100,
            "unit": "ms",
        },
        {
            "figure": "remote: the same, 90th percentile",
            "value": round(pct(logs_f, 0.9) * 1000, 1),
            "target": 100,
            "unit": "ms",
        },
        {
            "figure": "remote: a job's line until the SSE stream sends it (median)",
            "value": round(statistics.median(sse) * 1000, 1),
            "target": None,
            "unit": "ms",
        },
        {
            "figure": "remote: the same, 90th percentile",
            "value": round(pct(sse, 0.9) * 1000, 1),
            "target": None,
            "unit": "ms",
        },
        {
            "figure": "remote: `qwex run -b remote -- true`, server backend local",
            "value": round(cli["remote"] / cli["local"], 2),
            "target": 2.0,
            "unit": "x twin",
            "ms": round(cli["remote"] * 1000, 1),
            "twin": "qwex run -- true",
            "twin_ms": round(cli["local"] * 1000, 1),
        },
    ]
    if in_page:
        rows += [
            {
                "figure": "remote: a job's line until the dashboard's run page shows it (median)",
                "value": round(statistics.median(in_page) * 1000, 1),
                "target": 1000,
                "unit": "ms",
            },
            {
                "figure": "remote: the same, 90th percentile",
                "value": round(pct(in_page, 0.9) * 1000, 1),
                "target": 1000,
                "unit": "ms",
            },
        ]
    else:
        print("no headless Chromium (bash .ci/setup-browser.sh): the page's figure is left out")
    for name, path in (("health", "GET /health"), ("list", "GET /jobs")):
        rows.append(
            {
                "figure": f"remote: {path} with {FOLLOWERS:,} follow streams open",
                "value": round(followed["loaded"][name] / followed["idle"][name], 2),
                "target": 2.0,
                "unit": "x twin",
                "ms": round(followed["loaded"][name] * 1000, 2),
                "twin": f"{path}, no stream open (before and after)",
                "twin_ms": round(followed["idle"][name] * 1000, 2),
            }
        )
    print("where `qwex run -b remote -- true` spends its time (one run, QWEX_TIMINGS):")
    before = 0.0
    for phase, at in marks:
        print(f"  {phase:<22} {at:>8.1f} ms  (+{at - before:.1f})")
        before = at
    print(
        f"remote figures: {repeat} alternated samples per twin ({CLIENTS} x 25 requests a "
        f"burst), {len(logs_f)} lines via qwex logs -f, {len(sse)} via SSE, {len(in_page or [])} in the page; load average "
        f"{load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} cores"
    )
    out = ROOT / ".bench" / "remote.json"
    out.parent.mkdir(exist_ok=True)
    raw = {
        "load_average_1min": [load_before, load_after],
        "submit": s,
        "health_under_load": h,
        "list_s": listed,
        "logs_f_lags_s": logs_f,
        "sse_lags_s": sse,
        "page_lags_s": in_page,
        "run_s": cli,
        "phases_ms": marks,
        "followed": followed,
    }
    out.write_text(json.dumps({"results": rows, "raw": raw}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    count = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 10
    if "--live" in sys.argv:  # figure 6 alone, in minutes fewer than the whole bench
        with tempfile.TemporaryDirectory() as tmp:
            rows = live_rows(live_listing(Path(tmp).resolve(), count))
        for row in rows:
            print(json.dumps(row))
        raise SystemExit(0)
    for row in main(count):
        print(json.dumps(row))
