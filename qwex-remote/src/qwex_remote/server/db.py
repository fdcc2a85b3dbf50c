"""Opening the database and bringing its schema up to date.

SQLite (the default) runs in WAL mode with a busy timeout, so the API threads
and the worker read while one of them writes. A `postgresql://` URL uses
psycopg 3. Migrations are Alembic's, shipped in this package and run in code on
every start: no `alembic.ini` for the user to keep.

`Outage` is whether the database answers, shared by the worker and the requests:
an error that says it cannot be reached (`is_outage`) starts an outage, the next
statement that succeeds ends it, and each of the two is logged once.
"""

from __future__ import annotations

import logging
import threading
import time
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
    return create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
        # A database host that does not answer fails a connect in seconds (an outage, a
        # 503), instead of holding a request for the kernel's TCP timeout.
        connect_args={"connect_timeout": 5},
    )


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


OUTAGE_MESSAGE = "the server's database is unavailable; try again shortly"
"""What a client is told during an outage: nothing of the driver's text, host or port."""


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be used right now (down, restarting, a
    dropped connection, no connection free), rather than that a statement is wrong."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.OperationalError | sa.InterfaceError | sa.TimeoutError):
        return True
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - installed with qwex-remote
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class Outage:
    """Whether the database is out, for everyone using one engine: the first failure
    logs one line, the first statement that succeeds afterwards logs one more; the
    failures between (every worker tick, every request) log nothing."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            if self._since is not None:
                return
            self._since = time.monotonic()
        self._log.warning(
            "the database is unavailable (%s); requests get 503, running jobs go on and "
            "their ends are recorded when it is back",
            _first_line(exc),
        )

    def ok(self, *_args: Any) -> None:
        if self._since is None:  # every statement comes here: no lock unless out
            return
        with self._lock:
            since, failures = self._since, self._failures
            self._since, self._failures = None, 0
        if since is not None:
            self._log.warning(
                "the database is back after %.1f s (%d requests or worker ticks failed meanwhile)",
                time.monotonic() - since,
                failures,
            )


def watch(engine: Engine, log: logging.Logger) -> Outage:
    """The outage state of `engine`: any statement that succeeds ends an outage."""
    outage = Outage(log)
    event.listen(engine, "after_cursor_execute", outage.ok)
    return outage


def _first_line(exc: BaseException) -> str:
    """The driver's own first line (for the server's log, never a client)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0]}" if text else type(orig).__name__
