"""The run store: atomic records, unique-prefix ids, newest-first order."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from qwex_core.agent.record import read_record, write_record
from qwex_core.errors import RunNotFound
from qwex_core.ids import uuid7
from qwex_core.models import JobSpec
from qwex_core.store import RunStore

WRITES, ROUND = 3000, 100


def _writer(run_dir: str, seen: Any) -> None:
    """Rewrite the record WRITES times; after each ROUND of writes, wait until the reader has
    read one of that round, so that reads and writes interleave however the machine is
    loaded."""
    for i in range(WRITES):
        write_record(Path(run_dir), {"id": "x", "n": i, "pad": "y" * (i % 5000)})
        if i % ROUND == ROUND - 1:
            while seen.value < i - ROUND + 1:
                time.sleep(0.001)


def test_readers_never_see_a_half_written_record(tmp_path: Path) -> None:
    write_record(tmp_path, {"id": "x", "n": -1})
    context = multiprocessing.get_context("fork")
    seen = context.Value("i", -1)
    writer = context.Process(target=_writer, args=(str(tmp_path), seen), daemon=True)
    writer.start()
    numbers = set()
    try:
        while writer.is_alive():
            data = read_record(tmp_path)  # raises on a torn file
            assert data is not None and data["id"] == "x"
            assert data.get("pad", "") == "y" * (max(data["n"], 0) % 5000)
            numbers.add(data["n"])
            seen.value = max(seen.value, data["n"])
    finally:
        writer.kill()  # a failed read leaves it waiting for the reader
        writer.join()
    assert writer.exitcode == 0
    assert len(numbers) >= WRITES // ROUND  # a read within every round of writes
    assert not list(tmp_path.glob(".run.json.*.tmp"))


def test_ids_are_time_ordered_uuid7() -> None:
    ids = [uuid7() for _ in range(2000)]  # many within one millisecond
    assert ids == sorted(ids) and len(set(ids)) == 2000
    assert all(i[14] == "7" and i[19] in "89ab" for i in ids)


def test_unique_prefix_and_ambiguity(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    a = store.create(JobSpec(command=["true"]))
    b = store.create(JobSpec(command=["false"]))
    assert store.load(store.resolve(a.id[:36])).id == a.id
    common = next(n for n in range(36) if a.id[n] != b.id[n])
    assert store.resolve(b.id[: common + 1]) == b.id
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        store.resolve(a.id[:common])
    assert store.ids() == [b.id, a.id]


def test_new_run_is_pending_with_empty_logs(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run = store.create(JobSpec(command=["echo", "hi"], env={"A": "1"}))
    on_disk = json.loads((store.run_dir(run.id) / "run.json").read_text())
    assert on_disk["status"] == "pending" and on_disk["spec"]["env"] == {"A": "1"}
    assert store.log_path(run.id, "stdout").read_bytes() == b""
    assert store.log_path(run.id, "stderr").read_bytes() == b""


def test_a_run_record_replaced_by_a_link_is_never_read_through_it(tmp_path: Path) -> None:
    """A job can write its run folder (a container's bind mount): a link it puts in place of
    run.json, to any file of the server's user, is refused, not read."""
    from qwex_core.agent.record import read_record

    target = tmp_path / "secret.json"
    target.write_text(json.dumps({"id": "r1", "status": "succeeded", "token": "s3cr3t"}))
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    (run_dir / "run.json").symlink_to(target)
    with pytest.raises(ValueError, match="is a link"):
        read_record(run_dir)
