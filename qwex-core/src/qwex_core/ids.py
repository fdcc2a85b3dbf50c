"""Run ids: UUIDv7, so that sorting ids sorts runs by creation time.

Standard library only, and not even `uuid` (it imports `platform`): the agent imports
this module.
"""

from __future__ import annotations

import os
import time

_last = 0


def uuid7() -> str:
    """A new RFC 9562 version-7 UUID as a string (48-bit ms timestamp, 74 random bits).

    Ids made by one process increase strictly, even within a millisecond
    (RFC 9562 §6.2, method 2: the random part is incremented)."""
    global _last
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    if value <= _last and (_last + 1) & ((1 << 62) - 1):
        value = _last + 1
    _last = value
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
