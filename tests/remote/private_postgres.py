"""A PostgreSQL of the test's own, which it may stop and start (the shared one it must not).

Made with Debian's `initdb` and `pg_ctl`, run as the `postgres` user (the tests run as
root) in a temporary folder, on a free port. Without those programs the test skips on a
laptop and fails under CI, as for the shared PostgreSQL.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from server_support import free_port


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PrivatePostgres:
    bin: Path
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://qwex@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t", "30", *args
        )

    def _as_postgres(self, *argv: str) -> None:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, (argv, result.stdout, result.stderr)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.folder / "postgres.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started PostgreSQL on 127.0.0.1, role `qwex` (trust), removed afterwards."""
    binaries = _bin()
    if binaries is None or os.geteuid() != 0 or shutil.which("runuser") is None:
        message = (
            "a private PostgreSQL needs initdb and pg_ctl (apt-get install postgresql) and root"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{message}; under CI this is an error", pytrace=False)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="qwex-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    pg = PrivatePostgres(binaries, folder, free_port())
    try:
        pg._as_postgres(
            str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "qwex", "--auth=trust"
        )
        pg.start()
        yield pg
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(binaries / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)
