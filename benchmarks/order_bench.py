"""The write-order index's cost to the agent (issue 18.3), from samples alternated with their
twins so that a noisy neighbour hurts both alike.

For each command, the agent (`qwex_core.agent.supervisor.Supervisor`, output not passed
through) runs it with the index and, in turn, the same agent with the index left closed;
reported: the agent process's own CPU time (user + system, `getrusage`), medians, their
ratio, and how many pieces the index recorded. Then `LogReader(tail=5)` of a 1 GiB log.

    .nox/tests/bin/python benchmarks/order_bench.py [REPEATS]
"""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import sys
import tempfile
import time

from qwex_core.agent.order import INDEX_FILE, RECORD
from qwex_core.agent.supervisor import Supervisor
from qwex_core.logs import LogReader

COMMANDS = [
    "yes | head -c 200M",
    'python3 -c \'import sys\nfor i in range(200000): sys.stdout.write("line %d\\n" % i); '
    "sys.stdout.flush()'",
    "i=0; while [ $i -lt 20000 ]; do echo $i; i=$((i+1)); done",
]


def agent_cpu(folder: str, command: str, index: bool) -> tuple[float, int]:
    """(CPU seconds of the agent running `command`, pieces indexed)."""
    if not index:
        Supervisor._open_index = lambda self: None  # type: ignore[method-assign]
    try:
        before = resource.getrusage(resource.RUSAGE_SELF)
        Supervisor(folder, ["sh", "-c", command], passthrough=False).run()
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        Supervisor._open_index = OPEN_INDEX  # type: ignore[method-assign]
    path = os.path.join(folder, INDEX_FILE)
    pieces = os.path.getsize(path) // RECORD.size if os.path.exists(path) else 0
    shutil.rmtree(folder)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), pieces


OPEN_INDEX = Supervisor._open_index


def main(repeats: int) -> None:
    root = tempfile.mkdtemp(prefix="qwex-order-bench-")
    try:
        for command in COMMANDS:
            with_index, without, pieces = [], [], 0
            for number in range(repeats):
                cpu, pieces = agent_cpu(f"{root}/on-{number}", command, True)
                with_index.append(cpu)
                without.append(agent_cpu(f"{root}/off-{number}", command, False)[0])
            on, off = statistics.median(with_index), statistics.median(without)
            print(
                f"{command.splitlines()[0][:40]!r}: agent CPU {on * 1000:.1f} ms with the index, "
                f"{off * 1000:.1f} ms without: {on / off:.3f}x ({pieces} pieces)"
            )
        folder = f"{root}/big"
        Supervisor(folder, ["sh", "-c", "yes 'a line' | head -c 1G"], passthrough=False).run()
        paths = {s: f"{folder}/{s}.log" for s in ("stdout", "stderr")}
        started = time.perf_counter()
        with LogReader(paths, tail=5) as reader:
            shown = b"".join(chunk.data for chunk in reader.chunks(final=True))
        took = time.perf_counter() - started
        print(f"--tail 5 of a 1 GiB log: {took:.3f} s, {len(shown)} bytes shown")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
