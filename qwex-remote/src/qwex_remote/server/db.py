"""Opening the database and bringing its schema up to date.

SQLite (the default) runs in WAL mode with a busy timeout, so the API threads
and the worker read while one of them writes. A `postgresql://` URL uses
psycopg 3. Migrations are Alembic's, shipped in this package and run in code on
every start: no `alembic.ini` for the user to keep.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from qwex_core.errors import QwexError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATING = threading.Lock()
"""Alembic's `context` is one global per process: one migration at a time."""


def connect(url: str) -> Engine:
    """An engine for `url`; a plain `postgresql://` URL gets the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise QwexError(f"database URL {_safe(url)} is not valid: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply every migration not applied yet, up to `revision` (a no-op when there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with _MIGRATING, engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except Exception as exc:
        if isinstance(exc, QwexError):
            raise
        raise QwexError(
            f"cannot prepare the database {_safe(str(engine.url))}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None


def open_database(url: str) -> sessionmaker[Session]:
    """Connect, migrate, and return the session factory."""
    engine = connect(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"
