"""Server-side secrets: values an admin stores, jobs get in their environment, nobody reads back.

A secret's value is encrypted with Fernet (`cryptography`: AES-128-CBC and
HMAC-SHA256, a well-kept recipe rather than one of our own) under the key in
`DATA_DIR/secrets.key`, created 0600 by the first `qwex serve secret add`.
The database holds only ciphertext: a copy of it without the key file reveals
no value, and losing the key file loses every secret (add them again).

A job names secrets (`{"ENVVAR": "NAME"}`); its stored spec keeps the names.
The worker decrypts the values when it starts the job and hands them to core
as `JobSpec.secret_env`, which core never writes to a run record.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from qwex_core.errors import QwexError

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

    from qwex_remote.server.store import ServerStore

KEY_FILE = "secrets.key"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_PATTERN = f"^{NAME.pattern}$"
MAX_VALUE_BYTES = 64 << 10
"""A secret is a key or a password, not a file to ship: 64 KiB at most."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise QwexError(
            f"{name!r} cannot name a secret: use up to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_value(value: bytes) -> str:
    """The value as text a process environment can hold (UTF-8, no NUL, not empty)."""
    if not value:
        raise QwexError("the secret's value is empty")
    if len(value) > MAX_VALUE_BYTES:
        raise QwexError(
            f"the secret's value is {len(value)} bytes, over the limit of {MAX_VALUE_BYTES}"
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        raise QwexError(
            "the secret's value is not UTF-8 text (an environment holds text)"
        ) from None
    if "\x00" in text:
        raise QwexError("the secret's value holds a NUL byte, which an environment cannot hold")
    return text


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_key(data_dir: Path, *, create: bool = False) -> Fernet:
    """The Fernet of this server's key file; made (0600) when `create` and there is none."""
    from cryptography.fernet import Fernet

    path = key_path(data_dir)
    if create and not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass  # made by another command at the same time: use that one
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise QwexError(
            f"the server's secrets key {path} is missing: without it no secret can be read "
            "(restore the file, or add the secrets again with `qwex serve secret add`)"
        ) from None
    except OSError as exc:
        raise QwexError(f"cannot read the secrets key {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        key = fh.read().strip()
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise QwexError(
            f"the secrets key {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        return Fernet(key)
    except ValueError:
        raise QwexError(f"{path} does not hold a Fernet key") from None


def encrypt(fernet: Fernet, value: str) -> str:
    return fernet.encrypt(value.encode("utf-8")).decode("ascii")


def resolve(store: ServerStore, data_dir: Path, wanted: Mapping[str, str]) -> dict[str, str]:
    """The environment of a job's secrets: `wanted` maps env var to secret name. A message
    names what is missing, never a value."""
    from cryptography.fernet import InvalidToken

    stored = store.secret_ciphertexts(set(wanted.values()))
    missing = sorted(set(wanted.values()) - set(stored))
    if missing:
        raise QwexError(
            f"secret {missing[0]!r} no longer exists on the server (removed after the submit)"
        )
    fernet = load_key(data_dir)
    env = {}
    for var, name in wanted.items():
        try:
            env[var] = fernet.decrypt(stored[name].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise QwexError(
                f"secret {name!r} cannot be decrypted with {key_path(data_dir)} (was the key "
                "replaced?); add it again with `qwex serve secret add --replace`"
            ) from None
    return env
