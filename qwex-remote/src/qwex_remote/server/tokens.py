"""Bearer tokens: made here, stored hashed, compared in constant time.

A token's secret is 32 random bytes from `secrets` (256 bits). Its sha256 is
what the database keeps. A slow, salted password hash (bcrypt, argon2) exists to
make guessing a *human-chosen* password expensive; a uniformly random 256-bit
secret cannot be guessed, so one sha256 is enough, costs nothing per request,
and lets the server find the token by its hash with an index. A stolen database
therefore holds no usable secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum

PREFIX = "qwex_"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class Role(StrEnum):
    """What a token may do, each role including the ones before it."""

    VIEWER = "viewer"
    """Read only: the GET routes."""
    USER = "user"
    """Also submit jobs, upload snapshots and cancel their own jobs."""
    ADMIN = "admin"
    """Also cancel anyone's jobs."""


ROLES = list(Role)


def rank(role: str) -> int:
    """The role's place in viewer < user < admin (an unknown one ranks below viewer)."""
    return ROLES.index(Role(role)) if role in ROLES else -1


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


SECRET_CHARS = 43
"""The URL-safe characters after PREFIX in a secret `new_secret` makes (256 bits)."""
SECRET = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{{SECRET_CHARS},}}")


def check_secret(secret: str) -> str:
    """A secret given to the server (from a file, e.g. a Kubernetes Secret), refused unless
    it is as strong as the ones it makes: one sha256 of it is all that is stored."""
    if not SECRET.fullmatch(secret):
        raise ValueError(
            f"a token's secret must be {PREFIX!r} followed by at least {SECRET_CHARS} "
            "characters among letters, digits, '_' and '-' (256 random bits), e.g. from: "
            "python3 -c \"import secrets; print('qwex_' + secrets.token_urlsafe(32))\""
        )
    return secret


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_hash: str) -> bool:
    """Whether `secret` hashes to `stored_hash`, in time independent of where they differ."""
    return hmac.compare_digest(digest(secret), stored_hash)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} cannot name a token: use up to 64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return name
