"""What `GET /metrics` serves: the server's metrics, with the jobs counted now."""

from __future__ import annotations

from qwex_remote.server.db import is_outage
from qwex_remote.server.metrics import CONTENT_TYPE
from qwex_remote.server.state import ServerState

__all__ = ["CONTENT_TYPE", "exposition"]


def exposition(state: ServerState) -> bytes:
    """The Prometheus text of the server's metrics. The jobs by status and backend are
    counted in the database now (one GROUP BY); during a database outage they are left
    out and `qwex_database_up` is 0, so the rest can still be scraped."""
    try:
        counts = state.store.job_counts()
    except Exception as exc:
        if not is_outage(exc):
            raise
        state.store.outage.failed(exc)
        counts = None
    return state.metrics.render(counts)
