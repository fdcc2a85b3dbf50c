"""A real `qwex serve` process on loopback, and an httpx client for it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

QWEX = str(Path(sys.executable).parent / "qwex")
FINAL = {"succeeded", "failed", "cancelled", "lost"}
CONFIG = """\
[server]
backends = ["local", "docker"]
default_backend = "local"
images = ["qwex-test/*"]
max_snapshot_bytes = 65536
sse_keepalive = 0.3
profiles = ["small"]

[profiles.small]
backend = "local"
env = { SIZE = "small" }
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(cwd: Path) -> dict[str, str]:
    """The environment without QWEX_* variables and without the user's qwex config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QWEX_")}
    env["XDG_CONFIG_HOME"] = str(cwd.parent / "xdg")
    return env


def qwex_cli(
    *args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**clean_env(cwd), **(env or {})}
    return subprocess.run(
        [QWEX, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@dataclass
class Server:
    """`qwex serve` in `project` (its qwex.toml holds the policy), data in `data_dir`."""

    project: Path
    data_dir: Path
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    """Added to the environment of `qwex serve` and the token commands."""
    proc: subprocess.Popen[str] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"serve-{self.port}.log"

    def db_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        return [*args, "--database-url", self.database_url] if self.database_url else args

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return qwex_cli(*args, cwd=self.project, env=self.env)

    def add_token(self, name: str, role: str = "user", *, cli: bool = False) -> str:
        """A token made by `qwex serve token add` (`cli`), or by the store directly (faster)."""
        if cli:
            result = self.cli("serve", "token", "add", name, "--role", role, *self.db_args())
            assert result.returncode == 0, result.stderr
            self.tokens[name] = result.stdout.strip()
        else:
            from qwex_remote.server.db import open_database
            from qwex_remote.server.store import ServerStore

            url = (
                self.database_url
                or self.env.get("QWEX_SERVER_DATABASE_URL")
                or f"sqlite:///{self.data_dir / 'server.db'}"
            )
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.tokens[name] = ServerStore(open_database(url)).add_token(name, role)
        return self.tokens[name]

    def start(self, *extra: str) -> Server:
        env = {**clean_env(self.project), **self.env}
        log = open(self.log_path, "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [QWEX, "serve", "--port", str(self.port), *self.db_args(), *extra],
            cwd=self.project,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"qwex serve exited:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"qwex serve did not answer:\n{self.log_path.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("qwex serve did not stop within 20 s of SIGTERM") from None
        return self.proc.returncode

    def client(self, who: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def submit(client: httpx.Client, sid: str, command: list[str], **spec: Any) -> dict[str, Any]:
    response = client.post("/jobs", json={"submission_id": sid, "command": command, **spec})
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_final(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["status"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def wait_status(client: httpx.Client, job_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/jobs/{job_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"job {job_id} never became {status}"
        time.sleep(0.05)


def make_server(root: Path, database_url: str | None = None, config: str = CONFIG) -> Server:
    """A server (not started) whose project and data live under `root`."""
    project = root / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "qwex.toml").write_text(config)
    return Server(project=project, data_dir=root / "data", database_url=database_url)


@contextlib.contextmanager
def team_server(root: Path) -> Iterator[Server]:
    """A started server with the users alice and bob; on the way out it must stop cleanly
    and its log must hold no token."""
    srv = make_server(root)
    for name in ("alice", "bob"):
        srv.add_token(name)
    srv.start()
    yield srv
    assert srv.stop() in (0, -signal.SIGTERM)
    log = srv.log_path.read_text()
    assert not [name for name, secret in srv.tokens.items() if secret in log]


def wait_logged(server: Server, text: str, timeout: float = 60) -> None:
    """Wait until the server's log holds `text` (a restarted server re-attaching a job)."""
    deadline = time.monotonic() + timeout
    while text not in (server.log_path.read_text() if server.log_path.exists() else ""):
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        time.sleep(0.05)


def gate_command(gate: str, before: str, after: str) -> list[str]:
    """A command that prints `before`, waits until the file `gate` exists, prints `after`:
    it is still running for as long as the test wants (a server restart, say)."""
    return ["sh", "-c", f"echo {before}; until [ -e {gate} ]; do sleep 0.05; done; echo {after}"]


def inotify_fds(pid: int) -> int:
    """How many inotify instances process `pid` holds open."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd) == "anon_inode:inotify"
        except OSError:  # closed since it was listed
            continue
    return count
