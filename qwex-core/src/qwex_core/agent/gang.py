"""`qwex run --local --workers SPEC --run-dir DIR -- COMMAND`: a run's workers on one machine.

The local and Docker backends run a `--nodes` or `--array` run as their agent's command
(the agent records, cancels and times it as any other): this starts the command once per
worker, each with its rank's environment (`qwex_core.workers`: the rendezvous on loopback,
`MASTER_PORT` a free port; an array task's `QWEX_ARRAY_INDEX`), at most `limit` array tasks
at once. Each worker's output (stderr merged into stdout, as a pod's log) goes whole-line
to stdout as `[rank] line` and as it is to `workers/<rank>.log`; its state to
`workers/state.json` (`qwex status`). A worker of a `--nodes` run that fails stops the
others (SIGTERM, SIGKILL after the grace period) and the run's reason names it
(`workers/reason`, read by the supervisor). The workers stay in this process's group, so
the agent's signals reach every one of them (a cancel's SIGTERM, its SIGKILL after the
grace period) and nothing outlives the run; stopping the others after a failure signals
each worker's process tree (found through /proc). Stdlib only (it runs in the frozen
agent).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO

WORKERS_DIR = "workers"
STATE_FILE = "state.json"
REASON_FILE = "reason"


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's pick), for `MASTER_PORT`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def worker_env(plan: dict[str, Any], rank: int, port: int) -> dict[str, str]:
    """Worker `rank`'s environment on this machine (see `qwex_core.workers`)."""
    if plan.get("array") is not None:
        return {"QWEX_ARRAY_INDEX": str(rank)}
    nodes, procs = int(plan["nodes"]), int(plan.get("procs_per_node") or 1)
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": str(nodes * procs),
        "NNODES": str(nodes),
        "LOCAL_WORLD_SIZE": str(procs),
        "PET_NNODES": str(nodes),
        "PET_NPROC_PER_NODE": str(procs),
        "PET_MASTER_ADDR": "127.0.0.1",
        "PET_MASTER_PORT": str(port),
        "NODE_RANK": str(rank),
        "PET_NODE_RANK": str(rank),
    }
    if procs == 1:
        env.update(RANK=str(rank), LOCAL_RANK="0")
    return env


class Gang:
    """The workers of one run, their output and their states."""

    def __init__(self, plan: dict[str, Any], run_dir: str, command: list[str]) -> None:
        self.plan = plan
        self.command = command
        self.dir = os.path.join(run_dir, WORKERS_DIR)
        os.makedirs(self.dir, exist_ok=True)
        array = plan.get("array")
        if array is not None:
            self.ranks = list(range(int(array[0]), int(array[1]) + 1))
            self.limit = int(array[2] or len(self.ranks))
        else:
            self.ranks = list(range(int(plan["nodes"])))
            self.limit = len(self.ranks)
        self.grace = float(plan.get("grace") or 10)
        self.port = free_port()
        self.out_lock = threading.Lock()
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.readers: dict[int, threading.Thread] = {}
        self.state: dict[int, dict[str, Any]] = {
            r: {"rank": r, "state": "pending", "exit_code": None, "reason": None}
            for r in self.ranks
        }
        self.stopping = False

    def _save(self) -> None:
        rows = [self.state[r] for r in self.ranks]
        tmp = os.path.join(self.dir, f".{STATE_FILE}")
        with open(tmp, "w") as fh:
            json.dump(rows, fh)
        os.replace(tmp, os.path.join(self.dir, STATE_FILE))

    def _start(self, rank: int) -> None:
        env = {**os.environ, **worker_env(self.plan, rank, self.port)}
        try:
            proc = subprocess.Popen(
                self.command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        except OSError as exc:
            self.state[rank].update(state="failed", exit_code=127, reason=f"cannot start: {exc}")
            return
        self.procs[rank] = proc
        self.state[rank]["state"] = "running"
        assert proc.stdout is not None
        reader = threading.Thread(target=self._copy, args=(rank, proc.stdout), daemon=True)
        reader.start()
        self.readers[rank] = reader

    def _copy(self, rank: int, pipe: BinaryIO) -> None:
        tag = f"[{rank}] ".encode()
        out = sys.stdout.buffer
        with open(os.path.join(self.dir, f"{rank}.log"), "ab") as own:
            for line in iter(pipe.readline, b""):
                own.write(line)
                own.flush()
                with self.out_lock:
                    out.write(tag + line if line.endswith(b"\n") else tag + line + b"\n")
                    out.flush()

    def _ended(self, rank: int, code: int) -> None:
        # What it left running may hold its output open: the agent ends it with the run.
        self.readers[rank].join(timeout=2.0)
        row = self.state[rank]
        if code < 0:
            name = signal.Signals(-code).name
            code = 128 - code
            row.update(exit_code=code, reason=f"killed by {name}")
        else:
            row.update(exit_code=code, reason=f"exit code {code}")
        if self.stopping and code != 0:
            row.update(state="stopped", reason=None)
        else:
            row["state"] = "succeeded" if code == 0 else "failed"
            if code == 0:
                row["reason"] = None

    def stop(self) -> None:
        """Stop every live worker: SIGTERM to its process tree, SIGKILL after the grace."""
        self.stopping = True
        live = [p for p in list(self.procs.values()) if p.poll() is None]
        for proc in live:
            for pid in tree(proc.pid):
                with_suppress(os.kill, pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while any(p.poll() is None for p in live) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in live:
            for pid in tree(proc.pid):
                with_suppress(os.kill, pid, signal.SIGKILL)

    def run(self) -> int:
        waiting = list(self.ranks)
        gang = self.plan.get("array") is None
        first_failure: int | None = None
        self._save()
        while waiting or self.procs:
            while waiting and len(self.procs) < self.limit and not self.stopping:
                self._start(waiting.pop(0))
                self._save()
            ended = [(r, p.returncode) for r, p in list(self.procs.items()) if p.poll() is not None]
            if not ended:
                time.sleep(0.05)
                continue
            for rank, code in ended:
                del self.procs[rank]
                self._ended(rank, code)
                if code != 0 and first_failure is None and not self.stopping:
                    first_failure = rank
                    if gang:
                        self.stop()
                        waiting.clear()
            self._save()
        failed = [r for r in self.ranks if self.state[r]["state"] == "failed"]
        if not failed:
            return 0
        worst = self.state[first_failure if first_failure is not None else failed[0]]
        if gang:
            reason = f"worker {worst['rank']} failed: {worst['reason']}"
            if len(self.ranks) > 1:
                reason += "; the other workers were stopped"
        else:
            names = ", ".join(str(r) for r in failed)
            reason = (
                f"{len(failed)} of {len(self.ranks)} tasks failed ({names}); "
                f"task {worst['rank']}: {worst['reason']}"
            )
        with open(os.path.join(self.dir, REASON_FILE), "w") as fh:
            fh.write(reason)
        sys.stderr.write(f"qwex: {reason}\n")
        code = int(worst["exit_code"] or 1)
        return code if 0 < code < 256 else 1


def with_suppress(call: Any, *args: Any) -> None:
    with contextlib.suppress(OSError):  # it ended meanwhile
        call(*args)


def tree(pid: int) -> list[int]:
    """`pid` and every process below it (its children's children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def reason(run_dir: str) -> str | None:
    """Why a run's workers failed, as the gang wrote it (None: not a run of workers)."""
    try:
        with open(os.path.join(run_dir, WORKERS_DIR, REASON_FILE)) as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def main(argv: list[str]) -> int:
    """`argv`: what follows `run --local`: `--workers JSON --run-dir DIR -- COMMAND...`."""
    args = list(argv)
    plan: dict[str, Any] | None = None
    run_dir = None
    while args and args[0] != "--":
        opt = args.pop(0)
        if opt == "--workers" and args:
            plan = json.loads(args.pop(0))
        elif opt == "--run-dir" and args:
            run_dir = args.pop(0)
        else:
            sys.stderr.write(f"qwex: error: unknown workers option {opt}\n")
            return 125
    command = args[1:]
    if plan is None or run_dir is None or not command:
        sys.stderr.write("usage: qwex run --local --workers JSON --run-dir DIR -- COMMAND...\n")
        return 125
    gang = Gang(plan, run_dir, command)
    cancelled: list[int] = []

    def cancel(signum: int, _frame: object) -> None:
        # A cancel: the agent signals the whole group, workers included; no new worker starts.
        cancelled.append(signum)
        gang.stopping = True

    signal.signal(signal.SIGTERM, cancel)
    signal.signal(signal.SIGINT, cancel)
    code = gang.run()
    return 128 + cancelled[0] if cancelled else code
