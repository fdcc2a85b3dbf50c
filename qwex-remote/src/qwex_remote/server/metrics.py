"""The server's Prometheus metrics, served by `GET /metrics` (docs/server.md, "Metrics").

One registry per app, not prometheus_client's global one: two apps in one process (the
tests make many) each count their own. Labels are bounded sets chosen by the server
(statuses, backend names, error codes, route templates, methods, status codes), never a
job's id, submitter, command or a token: a viewer token may read them all.

The jobs by status and backend come from the database at scrape time (one GROUP BY,
`store.job_counts`), so every server sharing a database reports the same numbers; the
counters and histograms count what this process saw since it started.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text format (what `generate_latest` writes), read by every Prometheus."""
STATUSES = ("pending", "queued", "running", "succeeded", "failed", "cancelled", "lost")
"""A job's statuses: each is reported for every backend seen, 0 included, so a query or an
alert never meets a missing series."""
QUEUE_WAIT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
"""From a local job that starts at once to one Kueue holds for hours (seconds)."""
UNMATCHED = "unmatched"
PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
"""A parameter of a route's path template: `{job_id}`, `{path:path}`."""
"""The route label of a request no route matched: never the raw path."""

JobCounts = Sequence[tuple[str, str, int]]
"""(status, backend, jobs) rows."""


class JobsCollector:
    """`qwex_jobs`, from the counts handed to `Metrics.render`."""

    def __init__(self) -> None:
        self.counts: JobCounts = ()

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("qwex_jobs", "", labels=["status", "backend"])]

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "qwex_jobs",
            "Jobs in the server's database by status and backend, counted at scrape time",
            labels=["status", "backend"],
        )
        seen: dict[tuple[str, str], int] = {}
        for status, backend, count in self.counts:
            seen[(status, backend)] = seen.get((status, backend), 0) + count
        backends = sorted({backend for _, backend in seen})
        statuses = [*STATUSES, *sorted({s for s, _ in seen} - set(STATUSES))]
        for backend in backends:
            for status in statuses:
                jobs.add_metric([status, backend], seen.get((status, backend), 0))
        yield jobs


class Metrics:
    """What the server counts, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._jobs = JobsCollector()
        self._render_lock = threading.Lock()
        self.registry.register(self._jobs)
        ProcessCollector(registry=self.registry)  # CPU, memory, open files of `qwex serve`
        self.submissions = Counter(
            "qwex_submissions",
            "Jobs submitted and queued, by the backend they run on (a repeated submission "
            "that returns its earlier job is not counted)",
            ["backend"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "qwex_submissions_refused",
            "Submissions the server refused, by the error code the client got "
            "(policy_refused, invalid_request, secret_not_found, snapshot_not_found, "
            "submission_conflict)",
            ["reason"],
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "qwex_queue_wait_seconds",
            "Seconds from a job's submission to its command running, by backend (observed "
            "when this server's worker sees the job start)",
            ["backend"],
            buckets=QUEUE_WAIT_BUCKETS,
            registry=self.registry,
        )
        self.latency = Histogram(
            "qwex_http_request_duration_seconds",
            "Seconds from a request's arrival to its response's status line (for a log "
            "stream, until it opens), by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.log_streams = Gauge(
            "qwex_log_streams_open",
            "Log streams (GET /jobs/{job_id}/logs/follow) open now",
            registry=self.registry,
        )

    def render(self, counts: JobCounts) -> bytes:
        """The Prometheus text of every metric, with `counts` as the jobs by status and
        backend."""
        with self._render_lock:
            self._jobs.counts = counts
            try:
                return generate_latest(self.registry)
            finally:
                self._jobs.counts = ()


class RequestTimer:
    """ASGI middleware observing `Metrics.latency` for every HTTP request, labelled by the
    template of the route that answered (`/api/v1/jobs/{job_id}`), never the raw path.

    `templates` gives every route's template (the app's OpenAPI paths, say): a request
    refused before routing (by the body limit) is matched against them."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, templates: Callable[[], Iterable[str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        answered = False

        async def timed(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                self._observe(scope, message["status"], time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            if not answered:  # an error the server's outermost layer turns into a 500
                self._observe(scope, 500, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = self.template(scope)
        self.metrics.latency.labels(scope["method"], route, str(status)).observe(seconds)

    def template(self, scope: Scope) -> str:
        """The template of the route `scope` was routed to, else the first that matches."""
        own = getattr(scope.get("route"), "path", None)
        if isinstance(own, str):
            return whole_template(scope["path"], own, scope.get("path_params") or {})
        if self._compiled is None:
            self._compiled = [(compile_path(t)[0], t) for t in self.templates()]
        for pattern, template in self._compiled:
            if pattern.match(scope["path"]):
                return template
        return UNMATCHED


def whole_template(path: str, own: str, params: dict[str, Any]) -> str:
    """The template of the whole `path` from that of the route that matched it, `own`: a
    route of a router included under a prefix may know only its own part (`/jobs/{job_id}`
    of `/api/v1/jobs/{job_id}`); the prefix is what `path` holds before that part."""

    def value(match: re.Match[str]) -> str:
        return str(params.get(match[1], match[0]))

    rendered = PARAMETER.sub(value, own)
    return path.removesuffix(rendered) + own if path.endswith(rendered) else own
