"""`qwex serve`, `qwex serve token add|list|revoke` and `qwex serve secret add|list|rm`,
added by the qwex-remote plugin.

Defined with click only: FastAPI, SQLAlchemy and uvicorn are imported inside the
command bodies, since this module is loaded for `qwex --help`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from qwex_core.errors import QwexError

if TYPE_CHECKING:
    import socket

    from qwex_core.cli.context import State
    from qwex_core.config import QwexConfig

    from qwex_remote.server.settings import ServerSettings
    from qwex_remote.server.store import ServerStore

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PORT = 8765
SERVER_LIBRARIES = (
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "cryptography",
    "prometheus_client",
    "jinja2",
)
"""What `qwex serve` imports that a client-only install (`pip install qwex-remote`) lacks:
the `server` extra of qwex-remote brings them."""


def require_server_libraries() -> None:
    """One line naming the extra to install when the server's libraries are missing, rather
    than a traceback from the first import of FastAPI or SQLAlchemy."""
    from importlib.util import find_spec

    missing = [name for name in SERVER_LIBRARIES if find_spec(name) is None]
    if missing:
        raise QwexError(
            f"qwex serve needs the server's libraries, not installed here ({', '.join(missing)}): "
            "pip install 'qwex-remote[server]'"
        )


def _database_options(func: F) -> F:
    func = click.option(
        "--database-url",
        help="SQLAlchemy URL of the database, e.g. postgresql://USER@127.0.0.1/qwex "
        "(default: database_url of [server] in qwex.toml or [tool.qwex.server] in "
        "pyproject.toml, else SQLite in the data directory).",
    )(func)
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the server keeps its data (default: data_dir of [server] in qwex.toml or "
        "[tool.qwex.server] in pyproject.toml, else $XDG_DATA_HOME/qwex).",
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
    require_server_libraries()  # for `qwex serve token|secret ...` too
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    settings, config = _settings(state, data_dir, database_url)
    # The port first: a server that cannot listen must not open the database, let alone
    # re-attach (and so compete for) the jobs of the server that holds the port.
    sock = bind(host, port)
    try:
        store = _store(settings)
        if not is_loopback(host) and not store.has_tokens():
            raise click.ClickException(
                f"refusing to listen on {host}: no token exists, so anyone who reaches it "
                "could run commands on this machine; create one first (qwex serve token add "
                "NAME) or listen on 127.0.0.1"
            )
        _run(settings, config, state, sock, host, port, worker_name)
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound and listening before anything else starts."""
    import errno
    import socket

    from qwex_core.errors import QwexError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, IndexError) as exc:
        raise QwexError(f"cannot listen on {host}: {getattr(exc, 'strerror', exc)}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise QwexError(
                f"port {port} on {host} is in use (another qwex serve?); stop it, or choose "
                "another port with --port"
            ) from None
        raise QwexError(f"cannot listen on port {port} of {host}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _run(
    settings: ServerSettings,
    config: QwexConfig,
    state: State,
    sock: socket.socket,
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
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(1)


@serve.group()
def token() -> None:
    """Bearer tokens: who may use the server, as viewer, user or admin."""


@token.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "user", "admin"]),
    default="user",
    show_default=True,
    help="viewer: read only; user: also submit and cancel their own jobs; admin: also "
    "cancel anyone's.",
)
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the token's secret from this file instead of making one (a mounted "
    "Kubernetes Secret, say); it is not printed.",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="With --secret-file: a token of that name and secret existing already is no error.",
)
@_database_options
@click.pass_obj
def token_add(
    state: State,
    name: str,
    role: str,
    secret_file: Path | None,
    exist_ok: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Create a token and print its secret (shown this once; only its hash is kept)."""
    settings, _ = _settings(state, data_dir, database_url)
    if secret_file is not None:
        try:
            given = secret_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise QwexError(f"cannot read {secret_file}: {getattr(exc, 'strerror', exc)}") from None
        try:
            added = _store(settings).put_token(name, role, given, exist_ok=exist_ok)
        except ValueError as exc:
            raise QwexError(str(exc)) from None
        said = "created" if added else "exists already"
        click.echo(f"qwex: token {name!r} ({role}) {said}, its secret from {secret_file}", err=True)
        return
    try:
        secret = _store(settings).add_token(name, role)
    except ValueError as exc:
        raise QwexError(str(exc)) from None
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
        raise QwexError(f"no token named {name!r} that is not revoked already")
    click.echo(f"qwex: token {name!r} revoked", err=True)


@serve.group()
def secret() -> None:
    """Secrets a job asks for by name (`qwex run -b remote --secret NAME`): kept encrypted,
    never shown again."""


@secret.command("add")
@click.argument("name")
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the value from this file (default: stdin; one trailing newline is dropped).",
)
@click.option("--replace", is_flag=True, help="Change the value of an existing secret.")
@_database_options
@click.pass_obj
def secret_add(
    state: State,
    name: str,
    from_file: Path | None,
    replace: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Store a secret, its value read from stdin or --from-file (never from the command line,
    which other users of the machine can see)."""
    import sys

    from qwex_remote.server import secrets

    secrets.check_name(name)
    if from_file is not None:
        try:
            raw = from_file.read_bytes()
        except OSError as exc:
            raise QwexError(f"cannot read {from_file}: {exc.strerror or exc}") from None
    else:
        if sys.stdin.isatty():
            click.echo(f"qwex: value of secret {name!r} (end with Ctrl-D):", err=True)
        raw = sys.stdin.buffer.read()
    value = secrets.check_value(raw.removesuffix(b"\n").removesuffix(b"\r"))
    settings, _ = _settings(state, data_dir, database_url)
    store = _store(settings)
    fernet = secrets.load_key(settings.resolved_data_dir(), create=True)
    try:
        replaced = store.put_secret(name, secrets.encrypt(fernet, value), replace=replace)
    except ValueError as exc:
        raise QwexError(str(exc)) from None
    key = secrets.key_path(settings.resolved_data_dir())
    click.echo(
        f"qwex: secret {name!r} {'replaced' if replaced else 'added'} (encrypted with {key}: "
        "keep that file, without it the secrets cannot be read)",
        err=True,
    )


@secret.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per secret.")
@_database_options
@click.pass_obj
def secret_list(
    state: State, as_json: bool, data_dir: Path | None, database_url: str | None
) -> None:
    """The secrets: names and dates, never values."""
    import json

    settings, _ = _settings(state, data_dir, database_url)
    rows = [
        {"name": name, "created_at": created.isoformat(), "updated_at": updated.isoformat()}
        for name, created, updated in _store(settings).list_secrets()
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("no secrets (qwex serve secret add NAME)", err=True)
        return
    click.echo(f"{'NAME':32} {'CREATED':20} UPDATED")
    for r in rows:
        click.echo(f"{r['name']:32} {r['created_at'][:19]:20} {r['updated_at'][:19]}")


@secret.command("rm")
@click.argument("name")
@_database_options
@click.pass_obj
def secret_rm(state: State, name: str, data_dir: Path | None, database_url: str | None) -> None:
    """Remove a secret: jobs asking for it are refused from now on (422), and a queued one
    that asked for it fails when it starts."""
    settings, _ = _settings(state, data_dir, database_url)
    if not _store(settings).remove_secret(name):
        raise QwexError(f"no secret named {name!r} (qwex serve secret list shows them)")
    click.echo(f"qwex: secret {name!r} removed", err=True)
