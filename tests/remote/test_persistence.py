"""The persistence layer on SQLite and on a real PostgreSQL: migrations, idempotent
submissions, pagination, tokens, and the queue (two workers never take the same job)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from qwex_remote.server.db import connect, migrate, open_database
from qwex_remote.server.store import ServerStore, SubmissionConflict
from sqlalchemy import inspect, text


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'server.db'}"
    else:
        yield request.getfixturevalue("postgres_db")


def store_for(url: str) -> ServerStore:
    return ServerStore(open_database(url))


def add(store: ServerStore, sid: str, spec_hash: str = "h", submitter: str = "alice") -> str:
    job, _ = store.submit(
        submitter=submitter,
        submission_id=sid,
        spec={"command": ["true"]},
        spec_hash=spec_hash,
        backend="local",
        snapshot=None,
    )
    return job.id


def test_an_older_database_is_upgraded_with_its_jobs_kept(url: str) -> None:
    """A server of the previous release (schema 0003) left jobs: the new server adds the
    `signal` column on start, and every job reads as before, with no signal."""
    migrate(connect(url), "0003")
    with connect(url).begin() as conn:
        conn.execute(
            text(
                "insert into jobs (id, submission_id, submitter, spec, spec_hash, backend,"
                " status, exit_code, created_at) values ('j1', 's1', 'alice', '{}', 'h',"
                " 'local', 'failed', 143, CURRENT_TIMESTAMP)"
            )
        )
    store = store_for(url)
    job = store.get("j1")
    assert job is not None and (job.status, job.exit_code, job.signal) == ("failed", 143, None)


def test_migrations_create_the_tables_once(url: str) -> None:
    store_for(url)
    store_for(url)  # a second start finds the schema up to date
    engine = connect(url)
    tables = set(inspect(engine).get_table_names())
    assert {"jobs", "tokens", "snapshots", "secrets", "web_sessions", "alembic_version"} <= tables
    with engine.connect() as conn:
        assert conn.scalar(text("select version_num from alembic_version")) == "0006"
        if engine.dialect.name == "sqlite":
            assert conn.scalar(text("pragma journal_mode")) == "wal"


def test_the_migrations_build_exactly_the_tables_the_code_declares(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from qwex_remote.server.tables import Base

    store_for(url)
    with connect(url).connect() as conn:
        drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert drift == [], "tables.py and the migrations disagree: add a migration"


def test_a_database_of_the_first_schema_is_upgraded_with_its_jobs(url: str) -> None:
    engine = connect(url)
    migrate(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into jobs (id, submission_id, submitter, spec, spec_hash, backend, "
                "status, created_at) values ('j1', 's1', 'alice', '{}', 'h', 'local', "
                "'succeeded', '2026-01-01 00:00:00')"
            )
        )
    store = store_for(url)
    assert [j["id"] for j in store.list_jobs(submitter="alice")] == ["j1"]
    indexes = {i["name"] for i in inspect(connect(url)).get_indexes("jobs")}
    assert {"ix_jobs_submitter_seq", "ix_jobs_backend_seq", "ix_jobs_status_seq"} <= indexes
    assert "ix_jobs_submitter" not in indexes


def test_a_submission_id_names_one_job_per_submitter(url: str) -> None:
    store = store_for(url)
    first = add(store, "s1")
    assert add(store, "s1") == first
    assert add(store, "s1", submitter="bob") != first
    with pytest.raises(SubmissionConflict) as caught:
        add(store, "s1", spec_hash="other")
    assert caught.value.job.id == first


def test_pages_are_newest_first_and_filtered(url: str) -> None:
    store = store_for(url)
    ids = [add(store, f"s{i}") for i in range(7)]
    add(store, "x", submitter="bob")
    page1 = store.list_jobs(submitter="alice", limit=4)
    page2 = store.list_jobs(submitter="alice", limit=4, before=page1[-1]["seq"])
    assert [j["id"] for j in page1 + page2] == ids[::-1]
    store.update(ids[0], status="succeeded")
    assert [j["id"] for j in store.list_jobs(statuses=["succeeded"])] == [ids[0]]


def test_the_dashboards_filters_find_labels_and_text(url: str) -> None:
    store = store_for(url)
    specs = [
        {"command": ["sh", "-c", 'echo "say 100%"'], "labels": {"app.k8s.io/name": "web"}},
        {"command": ["python", "train_1.py"], "labels": {"team": "ml"}, "name": "Needle"},
    ]
    ids = [
        store.submit(
            submitter="alice",
            submission_id=f"f{i}",
            spec=spec,
            spec_hash=str(i),
            backend="local",
            snapshot=None,
        )[0].id
        for i, spec in enumerate(specs)
    ]

    def found(**filters: object) -> list[str]:
        return [j["id"] for j in store.list_jobs(**filters)]  # type: ignore[arg-type]

    assert found(label=("app.k8s.io/name", "web")) == [ids[0]]
    assert found(label=("team", "ml")) == [ids[1]]
    assert found(label=("team", "db")) == []
    assert found(text='ECHO "say 100%') == [ids[0]]  # as typed, in any case
    assert found(text='100%"') == [ids[0]]
    assert found(text="e_d") == []  # `_` is no wildcard (it would find "needle")
    assert found(text="needle") == [ids[1]]
    assert found(text="rain_") == [ids[1]] and found(text="%") == [ids[0]]
    assert found(ids=[ids[1], "nope"]) == [ids[1]]


def test_web_sessions_follow_their_token_and_expire(url: str) -> None:
    from datetime import timedelta

    from qwex_remote.server.store import now

    store = store_for(url)
    store.add_token("alice", "user")
    store.open_session("a" * 64, "alice", now() + timedelta(hours=1))
    store.open_session("b" * 64, "alice", now() - timedelta(seconds=1))
    who = store.session_principal("a" * 64)
    assert who is not None and (who.name, who.role) == ("alice", "user")
    assert store.session_principal("b" * 64) is None  # expired
    assert store.session_principal("c" * 64) is None  # never opened
    store.end_session("a" * 64)
    assert store.session_principal("a" * 64) is None
    store.open_session("d" * 64, "alice", now() + timedelta(hours=1))
    assert store.revoke_token("alice")
    assert store.session_principal("d" * 64) is None  # the token's revocation ends it


def test_tokens_are_stored_hashed_and_revocable(url: str) -> None:
    store = store_for(url)
    assert not store.has_tokens()
    secret = store.add_token("alice", "admin")
    assert store.has_tokens()
    who = store.authenticate(secret)
    assert who is not None and (who.name, who.is_admin) == ("alice", True)
    assert store.authenticate(secret + "x") is None
    assert all(secret not in (t.secret_hash, t.name) for t in store.list_tokens())
    with pytest.raises(ValueError, match="exists already"):
        store.add_token("alice", "user")
    assert store.revoke_token("alice") and not store.revoke_token("alice")
    assert store.authenticate(secret) is None and not store.has_tokens()


def test_two_workers_never_claim_the_same_job(url: str) -> None:
    ids = {add(store_for(url), f"q{i}") for i in range(60)}
    claimed: dict[str, list[str]] = {"w1": [], "w2": []}
    start = threading.Barrier(2)

    def work(name: str) -> None:
        store = store_for(url)  # each worker its own engine and connections
        start.wait()
        misses = 0
        while misses < 20:
            job = store.claim(name)
            if job is None:
                misses += 1
                continue
            assert job.claimed_by == name
            claimed[name].append(job.id)

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not set(claimed["w1"]) & set(claimed["w2"])
    assert set(claimed["w1"]) | set(claimed["w2"]) == ids
    assert sorted(claimed["w1"] + claimed["w2"]) == sorted(ids)  # none twice by one worker
    assert store_for(url).claim("w3") is None


def test_cancel_of_a_queued_job_is_at_once_and_of_a_claimed_one_is_left_to_its_worker(
    url: str,
) -> None:
    store = store_for(url)
    queued, claimed = add(store, "c1"), add(store, "c2")
    taken = store.claim("w")
    assert taken is not None and taken.id == queued
    store.cancel(claimed, "cancelled by alice")  # still in the queue
    job = store.get(claimed)
    assert job is not None and (job.status, job.reason) == ("cancelled", "cancelled by alice")
    store.cancel(queued, "cancelled by bob")  # claimed: its worker must act
    job = store.get(queued)
    assert job is not None and (job.status, job.cancel_reason) == ("pending", "cancelled by bob")
    assert [j.id for j in store.owned("w")] == [queued]


def test_jobs_are_counted_by_status_and_backend_from_an_index(url: str) -> None:
    """What /metrics counts on every scrape: one GROUP BY that reads the (status, backend)
    index alone on SQLite (no scan of the rows and their specs, no sort)."""
    store = store_for(url)
    for n in range(3):
        add(store, f"c{n}")
    first = store.list_jobs(limit=1)[0]["id"]
    store.update(first, status="succeeded")
    assert sorted(store.job_counts()) == [("pending", "local", 2), ("succeeded", "local", 1)]
    if url.startswith("sqlite"):
        with store.engine.connect() as conn:
            plan = conn.execute(
                text(
                    "explain query plan select status, backend, count(*) from jobs "
                    "group by status, backend"
                )
            ).all()
        assert [row[-1] for row in plan] == [
            "SCAN jobs USING COVERING INDEX ix_jobs_status_backend"
        ]
