"""A run's workers (`--nodes`) and array tasks (`--array`): their environment, their logs.

A run with several workers is still one run: one record, one `stdout.log` in which every
line begins with `[rank] ` (the array index for an array's task), and each worker's own
output, unprefixed, in `workers/<rank>.log` (`qwex logs --rank K`). Each worker's state is
a list in the record's `backend_data["workers"]` (`qwex status` prints one line each).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qwex_core.models import JobSpec

WORKERS_DIR = "workers"
MASTER_PORT = 29500
"""torch.distributed's default port: what a script that sets none expects."""


def worker_log(run_dir: Path, rank: int) -> Path:
    """Where worker (or array task) `rank`'s own output is kept."""
    return run_dir / WORKERS_DIR / f"{rank}.log"


def ranks(spec: JobSpec) -> list[int]:
    """The names of a run's workers: 0..N-1, or the array's indexes."""
    return list(spec.array.indexes) if spec.array is not None else list(range(spec.nodes))


def rendezvous_env(spec: JobSpec, master_addr: str, master_port: int) -> dict[str, str]:
    """The variables every worker of a `--nodes` run gets, the same on each: what
    `torch.distributed`'s `env://`, torchrun (its `PET_*` defaults), DeepSpeed and
    Accelerate read. The per-worker ones (`RANK`, `NODE_RANK`, `PET_NODE_RANK`) are
    set by the backend."""
    nodes, procs = spec.nodes, spec.procs_per_node
    return {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": str(nodes * procs),
        "NNODES": str(nodes),
        "LOCAL_WORLD_SIZE": str(procs),
        "PET_NNODES": str(nodes),
        "PET_NPROC_PER_NODE": str(procs),
        "PET_MASTER_ADDR": master_addr,
        "PET_MASTER_PORT": str(master_port),
    }


def rank_env(spec: JobSpec, rank: int) -> dict[str, str]:
    """The per-worker variables of worker `rank` (its node rank). With one process per
    worker, `RANK` (and `LOCAL_RANK` 0) too: that process is the rank; with more, the
    worker's launcher (torchrun) gives each of its processes `RANK` and `LOCAL_RANK`."""
    if spec.array is not None:
        return {"QWEX_ARRAY_INDEX": str(rank)}
    out = {"NODE_RANK": str(rank), "PET_NODE_RANK": str(rank)}
    if spec.procs_per_node == 1:
        out.update(RANK=str(rank), LOCAL_RANK="0")
    return out


def prefixed(rank: int, data: bytes) -> bytes:
    """`data`'s lines each beginning with `[rank] ` (`data` holds whole lines, or the last
    bytes of a worker's output)."""
    tag = f"[{rank}] ".encode()
    lines = data.splitlines(keepends=True)
    return b"".join(tag + line for line in lines)


def agent_workers_command(launcher: Sequence[str], run_dir: str, spec: JobSpec) -> list[str]:
    """The command an agent on one machine runs for a run of workers (`qwex_core.agent.gang`,
    through the same agent `launcher`): the user's command itself for a plain run."""
    if spec.workers == 1:
        return list(spec.command)
    plan = {
        "nodes": spec.nodes,
        "procs_per_node": spec.procs_per_node,
        "grace": spec.grace_period,
        "array": None
        if spec.array is None
        else [spec.array.first, spec.array.last, spec.array.limit],
    }
    return [
        *launcher,
        "run",
        "--local",
        "--workers",
        json.dumps(plan),
        "--run-dir",
        run_dir,
        "--",
        *spec.command,
    ]


def local_worker_states(run_dir: Path) -> list[dict[str, object]]:
    """Each worker's state as the agent of a local or Docker run keeps it (none: not a run
    of workers, or not started yet)."""
    try:
        rows = json.loads((run_dir / WORKERS_DIR / "state.json").read_text())
    except (OSError, ValueError):
        return []
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def row_text(row: dict[str, object]) -> str:
    """One worker's line in `qwex status`: `rank 1: failed, exit code 3, pod p-1`."""
    code = row.get("exit_code")
    parts = [f"rank {row.get('rank')}: {row.get('state')}"]
    if code is not None:
        parts.append(f"exit code {code}")
    reason = row.get("reason")
    if reason and reason != f"exit code {code}":
        parts.append(str(reason))
    if row.get("pod"):
        parts.append(f"pod {row['pod']}")
    return ", ".join(parts)
