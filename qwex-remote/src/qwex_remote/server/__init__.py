"""The qwex server (docs/server.md): app factory, persistence, the worker, `qwex serve`.

Nothing here is imported by qwex-core, and only `qwex serve` (or a test) imports
FastAPI, SQLAlchemy and uvicorn.
"""

API_VERSION = "1"
"""The REST API's version: the `/api/v1` prefix and what `GET /health` reports."""
