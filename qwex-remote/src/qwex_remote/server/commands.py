"""`qwex serve` and `qwex serve token add|list|revoke`, added by the qwex-remote plugin.

Defined with click only: FastAPI, SQLAlchemy and uvicorn are imported inside the
command bodies, since this module is loaded for `qwex --help`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from qwex_core.cli.context import State
    from qwex_core.config import QwexConfig

    from qwex_remote.server.settings import ServerSettings
    from qwex_remote.server.store import ServerStore

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PORT = 8765


def _database_options(func: F) -> F:
    func = click.option(
        "--database-url",
        help="SQLAlchemy URL of the database, e.g. postgresql://USER@127.0.0.1/qwex "
        "(default: [tool.qwex.server] database_url, else SQLite in the data directory).",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the server keeps its data (default: [tool.qwex.server] data_dir, "
        "else $XDG_DATA_HOME/qwex).",
    )(func)
    return func


def _settings(
    state: State, data_dir: Path | None, database_url: str | None
) -> tuple[ServerSettings, QwexConfig]:
    from qwex_core.config import load_config
    from qwex_core.paths import find_project_dir

    from qwex_remote.server.settings import ServerSettings

    config = load_config(state.project or find_project_dir(), state.host.config_sections)
    settings = config.section("server", ServerSettings)
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["data_dir"] = str(data_dir.resolve())
    if database_url:
        update["database_url"] = database_url
    return settings.model_copy(update=update), config


def _store(settings: ServerSettings) -> ServerStore:
    from qwex_remote.server.db import open_database
    from qwex_remote.server.store import ServerStore

    settings.resolved_data_dir().mkdir(parents=True, exist_ok=True)
    return ServerStore(open_database(settings.resolved_database_url()))


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address."""
    import ipaddress
    import socket

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int, help="TCP port.")
@_database_options
@click.option(
    "--worker-name",
    help="Name of this server's worker in the database (default: the host name); give each "
    "server sharing one PostgreSQL database its own.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    data_dir: Path | None,
    database_url: str | None,
    worker_name: str | None,
) -> None:
    """Run the qwex server: the REST API under /api/v1 and a worker that runs the jobs.

    \b
      qwex serve                          on 127.0.0.1:8765, SQLite in $XDG_DATA_HOME/qwex
      qwex serve token add alice          a token for alice (its secret is printed once)
      qwex serve --host 0.0.0.0           other machines too (needs a token first)

    See docs/server.md for the policy ([tool.qwex.server]) and PostgreSQL.
    """
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    settings, config = _settings(state, data_dir, database_url)
    store = _store(settings)
    if not is_loopback(host) and not store.has_tokens():
        raise click.ClickException(
            f"refusing to listen on {host}: no token exists, so anyone who reaches it could "
            "run commands on this machine; create one first (qwex serve token add NAME) or "
            "listen on 127.0.0.1"
        )
    _run(settings, config, state, host, port, worker_name)


def _run(
    settings: ServerSettings,
    config: QwexConfig,
    state: State,
    host: str,
    port: int,
    worker_name: str | None,
) -> None:
    import os
    import threading

    import uvicorn

    from qwex_remote.server.app import create_app

    # The configuration is loaded: the server's own settings (a database URL with its
    # password) must not reach the jobs, which the local runner starts with this environment.
    for var in [v for v in os.environ if v.startswith("QWEX_SERVER_")]:
        del os.environ[var]
    from qwex_remote.server.db import _safe

    stopping = threading.Event()
    from qwex_core.paths import find_project_dir

    app = create_app(
        settings,
        config=config,
        host=state.host,
        worker_name=worker_name,
        stopping=stopping,
        project_dir=state.project or find_project_dir(),
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            stopping.set()  # end the open log streams first, so shutdown does not wait on them
            super().handle_exit(sig, frame)

    import logging

    logger = logging.getLogger("qwex.server")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     qwex: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    from qwex_remote.server.changes import raise_open_files

    raise_open_files()  # a follow stream is an open socket: allow as many as the system does
    server = Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=10,
            proxy_headers=False,
        )
    )
    click.echo(
        f"qwex: serving on http://{host}:{port}/api/v1 (data in {settings.resolved_data_dir()}, "
        f"database {_safe(settings.resolved_database_url())})",
        err=True,
    )
    server.run()
    if not server.started:
        raise SystemExit(1)


@serve.group()
def token() -> None:
    """Bearer tokens: who may use the server, as user or admin."""


@token.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["user", "admin"]),
    default="user",
    show_default=True,
    help="admin may cancel anyone's jobs.",
)
@_database_options
@click.pass_obj
def token_add(
    state: State, name: str, role: str, data_dir: Path | None, database_url: str | None
) -> None:
    """Create a token and print its secret (shown this once; only its hash is kept)."""
    settings, _ = _settings(state, data_dir, database_url)
    try:
        secret = _store(settings).add_token(name, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(secret)
    click.echo(
        f"qwex: token {name!r} ({role}) created; keep the secret above, it is not shown again",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per token.")
@_database_options
@click.pass_obj
def token_list(
    state: State, as_json: bool, data_dir: Path | None, database_url: str | None
) -> None:
    """The tokens (names and roles; never their secrets)."""
    import json

    from qwex_remote.server.store import aware

    settings, _ = _settings(state, data_dir, database_url)
    rows = [
        {
            "name": t.name,
            "role": t.role,
            "created_at": aware(t.created_at).isoformat(),  # type: ignore[union-attr]
            "revoked_at": t.revoked_at and aware(t.revoked_at).isoformat(),  # type: ignore[union-attr]
        }
        for t in _store(settings).list_tokens()
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no tokens (qwex serve token add NAME)", err=True)
        return
    click.echo(f"{'NAME':24} {'ROLE':6} {'CREATED':20} REVOKED")
    for r in rows:
        revoked = str(r["revoked_at"] or "")[:19]
        click.echo(f"{r['name']:24} {r['role']:6} {str(r['created_at'])[:19]:20} {revoked}")


@token.command("revoke")
@click.argument("name")
@_database_options
@click.pass_obj
def token_revoke(state: State, name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    settings, _ = _settings(state, data_dir, database_url)
    if not _store(settings).revoke_token(name):
        raise click.ClickException(f"no token named {name!r} that is not revoked already")
    click.echo(f"qwex: token {name!r} revoked", err=True)
