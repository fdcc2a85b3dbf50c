"""Promises of docs/server.md that no other test checked, on real `qwex serve` processes: a
job runs with the server's own configuration, never a qwex.toml or pyproject.toml found in
its uploaded snapshot; `concurrency` caps the jobs one server runs at once; several servers
share one PostgreSQL database, each under its own `--worker-name`, and a job runs once,
its logs in the data directory of the server that ran it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from server_support import CONFIG, Server, make_server, submit, wait_final


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = make_server(tmp_path / "server")
    srv.add_token("alice")
    srv.start()
    yield srv
    srv.stop()


def test_a_snapshots_own_configuration_is_ignored(server: Server, tmp_path: Path) -> None:
    """ "runs it ... with the server's own configuration (never one found in the snapshot)".
    The snapshot holds a qwex.toml and a pyproject.toml setting env, a profile the server
    has, and a key no version of qwex knows: the job sees none of it and runs."""
    from qwex_core.snapshot import make_snapshot

    code = tmp_path / "code"
    code.mkdir()
    (code / "qwex.toml").write_text(
        'profile = "small"\nno_such_key = 1\n[env]\nFROM_QWEX_TOML = "read"\n'
    )
    (code / "pyproject.toml").write_text(
        '[tool.qwex]\nno_such_key = 1\n[tool.qwex.env]\nFROM_PYPROJECT = "read"\n'
    )
    snap = make_snapshot(code, limit=1 << 20)
    with server.client("alice") as alice:
        assert alice.put(f"/snapshots/{snap.sha256}", content=snap.data).status_code == 201
        script = (
            "ls qwex.toml pyproject.toml; "
            'echo "${FROM_QWEX_TOML:-unset} ${FROM_PYPROJECT:-unset} ${SIZE:-unset}"'
        )
        job = submit(alice, "snapshot-config", ["sh", "-c", script], snapshot=snap.sha256)
        final = wait_final(alice, job["id"])
        out = alice.get(f"/jobs/{job['id']}/logs").json()["data"]
    assert final["status"] == "succeeded", (final, out)
    assert out == "pyproject.toml\nqwex.toml\nunset unset unset\n"


# -- concurrency and several servers on one database ------------------------------------------

ONE_AT_A_TIME = CONFIG.replace("[server]\n", "[server]\nconcurrency = 1\n")


class Gates:
    """Jobs that say where they run, then wait until the test lets them finish."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()

    def command(self, n: int) -> list[str]:
        started, gate = self.root / f"started-{n}", self.root / f"go-{n}"
        script = f"pwd > {started}.tmp && mv {started}.tmp {started}; "
        script += f"while [ ! -e {gate} ]; do sleep 0.05; done"
        return ["sh", "-c", script]

    def started(self) -> dict[int, str]:
        """Which jobs run, and the folder each runs in (its server's data directory)."""
        return {
            int(p.name.split("-")[1]): p.read_text().strip()
            for p in self.root.glob("started-*")
            if not p.name.endswith(".tmp")
        }

    def wait_started(self, count: int, timeout: float = 60) -> dict[int, str]:
        deadline = time.monotonic() + timeout
        while len(found := self.started()) < count:
            assert time.monotonic() < deadline, f"{count} jobs never ran: {found}"
            time.sleep(0.05)
        return found

    def release(self, n: int) -> None:
        (self.root / f"go-{n}").touch()


def server_of(folder: str, servers: dict[str, Server]) -> str:
    (name,) = [n for n, s in servers.items() if folder.startswith(str(s.data_dir))]
    return name


def claimed_by(database_url: str) -> dict[str, str | None]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select id, claimed_by from jobs").fetchall()
    return {str(job_id): worker for job_id, worker in rows}


def test_two_servers_on_one_database_each_run_their_concurrency(
    tmp_path: Path, postgres_db: str
) -> None:
    """Two servers, `concurrency = 1` each, `--worker-name alpha` and `beta`, one PostgreSQL
    database; three jobs. Two run, one on each server, while the third waits in the queue;
    when one ends, the server it freed takes the third. Each job ran once, under the name of
    the server that ran it, in that server's data directory."""
    servers = {
        name: make_server(tmp_path / name, postgres_db, ONE_AT_A_TIME) for name in ("alpha", "beta")
    }
    token = servers["alpha"].add_token("alice")
    servers["beta"].tokens["alice"] = token
    gates = Gates(tmp_path / "gates")
    for name, srv in servers.items():
        srv.start("--worker-name", name)
    try:
        with servers["alpha"].client("alice") as alice:
            jobs = [submit(alice, f"cap-{n}", gates.command(n))["id"] for n in range(3)]
            first_two = gates.wait_started(2)
            assert len(first_two) == 2, f"more than one job per server: {first_two}"
            assert {server_of(f, servers) for f in first_two.values()} == {"alpha", "beta"}
            (waiting,) = set(range(3)) - set(first_two)
            assert alice.get(f"/jobs/{jobs[waiting]}").json()["status"] == "pending"
            assert claimed_by(postgres_db)[jobs[waiting]] is None, "a server took a 2nd job"

            freed = next(n for n, f in first_two.items() if server_of(f, servers) == "alpha")
            gates.release(freed)
            assert wait_final(alice, jobs[freed])["status"] == "succeeded"
            third = gates.wait_started(3)[waiting]
            assert server_of(third, servers) == "alpha", "the busy server took a 2nd job"

            for n in range(3):
                gates.release(n)
            finals = [wait_final(alice, job) for job in jobs]
        assert [f["status"] for f in finals] == ["succeeded"] * 3
        workers = claimed_by(postgres_db)
        for n, folder in gates.started().items():
            worker = workers[jobs[n]]
            assert worker is not None and worker == server_of(folder, servers)
            assert folder.startswith(str(servers[worker].data_dir / "jobs" / jobs[n]))
    finally:
        for n in range(3):
            gates.release(n)
        for srv in servers.values():
            srv.stop()


def test_concurrency_caps_the_jobs_one_server_runs(server: Server, tmp_path: Path) -> None:
    """The default is 4: with five jobs, four run and one waits until one of them ends."""
    gates = Gates(tmp_path / "gates")
    try:
        with server.client("alice") as alice:
            jobs = [submit(alice, f"four-{n}", gates.command(n))["id"] for n in range(5)]
            running = gates.wait_started(4)
            assert len(running) == 4, f"more than 4 jobs ran at once: {running}"
            (waiting,) = set(range(5)) - set(running)
            assert alice.get(f"/jobs/{jobs[waiting]}").json()["status"] == "pending"
            gates.release(next(iter(running)))
            gates.wait_started(5)
            for n in range(5):
                gates.release(n)
            assert {wait_final(alice, job)["status"] for job in jobs} == {"succeeded"}
    finally:
        for n in range(5):
            gates.release(n)
