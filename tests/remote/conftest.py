"""Fixtures for the qwex server tests: a real `qwex serve` on loopback, real PostgreSQL.

PostgreSQL is the one `.ci/setup-postgres.sh` starts (or `QWEX_TEST_POSTGRES_URL`).
Without it the PostgreSQL tests skip on a laptop and FAIL under CI (env `CI`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

DEFAULT_POSTGRES = "postgresql://qwex_test:qwex_test@127.0.0.1:54329/qwex_test"
HOW_TO = "run `bash .ci/setup-postgres.sh` as root (or set QWEX_TEST_POSTGRES_URL)"


def unavailable(message: str) -> None:
    """Skip on a laptop, fail under CI: a PostgreSQL test must never silently not run in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI this is an error ({HOW_TO})", pytrace=False)
    pytest.skip(f"{message} ({HOW_TO})")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL, checked to answer."""
    import psycopg

    url = os.environ.get("QWEX_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        unavailable(f"no PostgreSQL at {url.split('@')[-1]}: {str(exc).strip().splitlines()[0]}")
    return url


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server (dropped afterwards), as a URL."""
    import psycopg

    name = f"qwex_t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    base, _, _ = postgres_url.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def docker_ready() -> None:
    """The real Docker daemon, the agent and the busybox test image (as tests/docker needs)."""
    how = "run `.ci/setup-docker.sh && nox -s images agent`"
    try:
        from qwex_agent.build import build
        from qwex_docker.client import connect
    except ImportError as exc:  # pragma: no cover - qwex-docker is part of the test install
        unavailable(f"qwex-docker is not installed: {exc}")
        return
    try:
        api = connect(None, 30)
        api.ping()
        api.inspect_image("qwex-test/busybox")
        build()
    except Exception as exc:  # no daemon, no image, no agent: each says why
        message = f"Docker is not ready for the server tests: {type(exc).__name__}: {exc} ({how})"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
