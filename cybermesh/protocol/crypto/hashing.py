"""SHA-256, the one hash of block, transaction and state commitments."""

from __future__ import annotations

import hashlib
from typing import TypeAlias

__all__ = ["HASH32_LENGTH", "ZERO_HASH32", "Hash32", "as_hash32", "sha256"]

Hash32: TypeAlias = bytes
"""A 32-byte digest. A plain alias (not a NewType) so codec output can be used directly;
:func:`as_hash32` checks the length where input comes from outside."""

HASH32_LENGTH = 32
ZERO_HASH32: Hash32 = bytes(HASH32_LENGTH)


def sha256(data: bytes) -> Hash32:
    """The SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def as_hash32(value: object) -> Hash32:
    """Return ``value`` as bytes if it is a 32-byte digest; raise ValueError otherwise."""
    if type(value) is not bytes or len(value) != HASH32_LENGTH:
        length = len(value) if isinstance(value, bytes | bytearray) else None
        raise ValueError(f"expected a 32-byte hash, got {type(value).__name__} of length {length}")
    return value
