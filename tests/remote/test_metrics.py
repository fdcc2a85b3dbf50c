"""`GET /metrics` of a real `qwex serve` (SQLite and PostgreSQL), scraped and parsed as
Prometheus does: jobs by status and backend, submissions and refusals, queue wait, API
latency by route template, open log streams; for a viewer token, never leaking a job's
contents or a token."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from private_postgres import private_postgres
from prometheus_client.parser import text_string_to_metric_families
from server_support import Server, gate_command, make_server, submit, wait_final, wait_status

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_db")
    srv = make_server(tmp_path, url)
    srv.add_token("alice")
    srv.add_token("board", "viewer")
    srv.start()
    yield srv
    srv.stop()


def get_metrics(server: Server) -> httpx.Response:
    """GET /metrics with the viewer's token."""
    with httpx.Client(timeout=30) as http:
        return http.get(
            f"http://127.0.0.1:{server.port}/metrics",
            headers={"Authorization": f"Bearer {server.tokens['board']}"},
        )


def scrape(server: Server) -> tuple[str, Samples]:
    """The text of /metrics (read with the viewer's token) and its samples, parsed."""
    response = get_metrics(server)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_jobs_refusals_queue_wait_and_latency_by_route(server: Server) -> None:
    alice = server.client("alice")
    ids = [submit(alice, f"ok-{n}", ["echo", f"secret output {n}"])["id"] for n in range(2)]
    for job_id in ids:
        assert wait_final(alice, job_id)["status"] == "succeeded"
        assert alice.get(f"/jobs/{job_id}").status_code == 200
    refused = alice.post("/jobs", json={"submission_id": "no", "command": ["id"], "backend": "k8s"})
    assert refused.status_code == 403, refused.text
    unknown = alice.post(
        "/jobs", json={"submission_id": "s", "command": ["id"], "secrets": {"X": "nope"}}
    )
    assert unknown.status_code == 422, unknown.text
    too_large = alice.post(
        "/jobs",
        json={"submission_id": "big", "command": ["id"], "labels": {"x": "y" * (2 << 20)}},
    )
    assert too_large.status_code == 413
    assert alice.get("/jobs/no-such-job").status_code == 404
    assert alice.get("/no/such/route").status_code == 404

    text, samples = scrape(server)

    assert value(samples, "qwex_jobs", status="succeeded", backend="local") == 2
    for status in ("pending", "queued", "running", "failed", "cancelled", "lost"):
        assert (("qwex_jobs", frozenset({("status", status), ("backend", "local")}))) in samples
        assert value(samples, "qwex_jobs", status=status, backend="local") == 0
    assert value(samples, "qwex_submissions_total", backend="local") == 2
    assert value(samples, "qwex_submissions_refused_total", reason="policy_refused") == 1
    assert value(samples, "qwex_submissions_refused_total", reason="secret_not_found") == 1
    assert value(samples, "qwex_queue_wait_seconds_count", backend="local") == 2
    assert value(samples, "qwex_queue_wait_seconds_sum", backend="local") > 0
    assert value(samples, "qwex_queue_wait_seconds_bucket", backend="local", le="+Inf") == 2

    def requests(method: str, route: str, status: int) -> float:
        labels = {"method": method, "route": route, "status": str(status)}
        return value(samples, "qwex_http_request_duration_seconds_count", **labels)

    assert requests("POST", "/api/v1/jobs", 201) == 2
    assert requests("POST", "/api/v1/jobs", 403) == 1
    assert requests("POST", "/api/v1/jobs", 422) == 1
    assert requests("POST", "/api/v1/jobs", 413) == 1  # refused before routing
    assert requests("GET", "/api/v1/jobs/{job_id}", 200) >= 2
    assert requests("GET", "/api/v1/jobs/{job_id}", 404) == 1
    assert requests("GET", "unmatched", 404) == 1
    routes = {
        dict(labels)["route"]
        for name, labels in samples
        if name == "qwex_http_request_duration_seconds_count"
    }
    assert routes <= {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/health", "unmatched"}

    # Nothing of a job or a token: no id, no command, no output, no submitter, no secret.
    for leak in [*ids, "secret output", "alice", *server.tokens.values()]:
        assert leak not in text


def test_metrics_need_a_token_and_stay_out_of_the_spec(server: Server) -> None:
    url = f"http://127.0.0.1:{server.port}/metrics"
    anonymous = httpx.get(url, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthorized"
    spec = server.client("board").get(f"http://127.0.0.1:{server.port}/openapi.json")
    assert spec.status_code == 200
    assert "/metrics" not in spec.json()["paths"]
    committed = Path(__file__).parents[2] / "qwex-remote" / "openapi.json"
    assert '"/metrics"' not in committed.read_text()


def test_open_log_streams_are_counted_until_they_close(server: Server, tmp_path: Path) -> None:
    alice = server.client("alice")
    gate = tmp_path / "gate"
    job = submit(alice, "gated", gate_command(str(gate), "before", "after"))
    wait_status(alice, job["id"], "running")
    assert value(scrape(server)[1], "qwex_log_streams_open") == 0

    opened = threading.Event()
    close = threading.Event()

    def follow() -> None:
        with alice.stream("GET", f"/jobs/{job['id']}/logs/follow") as stream:
            assert stream.status_code == 200
            opened.set()
            close.wait(30)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        assert opened.wait(30)
        assert wait_metric(server, "qwex_log_streams_open", 1)
    finally:
        close.set()
        follower.join(30)
    assert wait_metric(server, "qwex_log_streams_open", 0)  # the client went
    gate.touch()
    assert wait_final(alice, job["id"])["status"] == "succeeded"


def wait_metric(server: Server, name: str, expected: float, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while value(scrape(server)[1], name) != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.postgres
def test_a_scrape_during_a_database_outage_is_a_plain_503(tmp_path: Path) -> None:
    """The token is looked up in the database: while it is away /metrics answers the 503 of
    every route (Prometheus marks the target down), and counts again once it is back."""
    with private_postgres() as pg:
        srv = make_server(tmp_path, pg.url)
        srv.add_token("alice")
        srv.add_token("board", "viewer")
        srv.start()
        try:
            job = submit(srv.client("alice"), "one", ["true"])
            assert wait_final(srv.client("alice"), job["id"])["status"] == "succeeded"
            pg.stop()
            during = get_metrics(srv)
            assert during.status_code == 503, during.text
            assert during.json()["error"]["code"] == "unavailable"
            pg.start()
            deadline = time.monotonic() + 30
            while (after := get_metrics(srv)).status_code != 200:
                assert time.monotonic() < deadline, after.text
                time.sleep(0.2)
            _, samples = scrape(srv)
            assert value(samples, "qwex_jobs", status="succeeded", backend="local") == 1
        finally:
            srv.stop()
        assert "Traceback" not in srv.log_path.read_text()
