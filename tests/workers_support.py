"""What the tests of `--nodes` and `--array` runs share, on every backend: a real collective
over the rendezvous the workers are given, and an array task that says when it ran."""

from __future__ import annotations

import re

ALLREDUCE = """\
import os, socket, time
# A socket-level all-reduce (a sum) over MASTER_ADDR:MASTER_PORT, as torch.distributed's
# gloo would rendezvous: rank 0 listens, every other rank connects, sends its value and
# gets the total back.
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
mine = rank + 1
if rank == 0:
    server = socket.create_server(("", port))
    peers = [server.accept()[0] for _ in range(world - 1)]
    total = mine + sum(int(peer.recv(64)) for peer in peers)
    for peer in peers:
        peer.sendall(str(total).encode())
else:
    deadline = time.monotonic() + 120
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    conn.sendall(str(mine).encode())
    total = int(conn.recv(64))
print(f"rank {rank} of {world}: sum {total} (node rank {os.environ['NODE_RANK']})", flush=True)
"""

TASK = """\
import os, time
index = os.environ["QWEX_ARRAY_INDEX"]
print("start", index, time.time(), flush=True)
time.sleep(float(os.environ.get("TASK_SECONDS", "0.3")))
print("end", index, time.time(), flush=True)
if index in os.environ.get("FAIL", "").split(","):
    raise SystemExit(4)
"""

_LINE = re.compile(r"^\[(\d+)\] (start|end) (\d+) ([0-9.]+)$", re.M)


def most_at_once(log: str) -> tuple[int, set[int]]:
    """The most tasks running at once in an array run's `[index]` log, and the indexes
    that ended (each task's start and end times, by its own clock)."""
    events = []
    ended = set()
    for tag, what, index, when in _LINE.findall(log):
        assert tag == index, f"task {index}'s line is tagged [{tag}]"
        events.append((float(when), 1 if what == "start" else -1))
        if what == "end":
            ended.add(int(index))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same time
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak, ended
