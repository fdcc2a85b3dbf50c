"""Where a queued run waits in its Kueue queue, from Kueue's visibility API.

Kueue computes queue positions on demand (`visibility.kueue.x-k8s.io`, served by Kueue
through the API server's aggregation layer). Clusters that do not serve it, or users
not allowed to read it, get no position: the run's reason is Kueue's message alone.
"""

from __future__ import annotations

import time
from typing import Any

from qwex_core.errors import BackendError

from qwex_k8s.client import Connection, Refused, rest

VERSIONS = ("v1beta2", "v1beta1")
FRESH = 2.0
"""Seconds a position is reused before asking again (one follower probes on every event)."""
RETRY = 60.0
"""Seconds before asking again a cluster that did not answer."""


class QueuePositions:
    """Positions of pending Workloads, asked per LocalQueue and kept a little while."""

    def __init__(self, conn: Connection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self._seen: dict[tuple[str, str], tuple[float, list[dict[str, Any]]]] = {}
        self._refused_until = 0.0

    def describe(self, namespace: str, queue: str, workload: str) -> str | None:
        """`3 of 5 waiting in LocalQueue q (7 in ClusterQueue)`, or None when unknown."""
        items = self._pending(namespace, queue)
        if items is None:
            return None
        for item in items:
            if (item.get("metadata") or {}).get("name") == workload:
                local = int(item.get("positionInLocalQueue", 0)) + 1
                text = f"{local} of {len(items)} waiting in LocalQueue {queue}"
                shared = int(item.get("positionInClusterQueue", 0)) + 1
                return text if shared == local else f"{text}, {shared} in its ClusterQueue"
        return None

    def _pending(self, namespace: str, queue: str) -> list[dict[str, Any]] | None:
        now = time.monotonic()
        if now < self._refused_until:
            return None
        kept = self._seen.get((namespace, queue))
        if kept is not None and now - kept[0] < FRESH:
            return kept[1]
        for version in VERSIONS:
            path = (
                f"/apis/visibility.kueue.x-k8s.io/{version}/namespaces/{namespace}"
                f"/localqueues/{queue}/pendingworkloads"
            )
            try:
                found = rest(self.conn, "GET", path, timeout=self.timeout)
            except Refused as exc:
                if exc.status == 404:
                    continue  # this version (or the whole API) is not served
                break
            except BackendError:
                break
            items = [i for i in found.get("items") or [] if isinstance(i, dict)]
            self._seen[(namespace, queue)] = (now, items)
            return items
        self._refused_until = now + RETRY
        return None
