"""What `GET /metrics` serves: the server's metrics, with the jobs counted now."""

from __future__ import annotations

from qwex_remote.server.metrics import CONTENT_TYPE
from qwex_remote.server.state import ServerState

__all__ = ["CONTENT_TYPE", "exposition"]


def exposition(state: ServerState) -> bytes:
    """The Prometheus text of the server's metrics, the jobs by status and backend counted
    in the database now (one GROUP BY). During a database outage this raises like every
    read, and the client gets the 503 `unavailable` of any route."""
    return state.metrics.render(state.store.job_counts())
