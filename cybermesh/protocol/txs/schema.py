"""Strict readers for decoded CBOR fields, shared by every transaction kind.

Decoding a transaction is a two-step affair: :func:`cybermesh.protocol.codec.decode` turns bytes
into plain values (refusing non-canonical CBOR), then the kind's ``from_cbor`` walks those values
with the readers below. Each reader checks the exact Python type (``bool`` is not an ``int``),
the range or size cap, and raises :class:`TxRejected` with the field's reason.

Text rules are fixed code-point lists rather than Unicode categories, because categories move
between Unicode versions and two validators on different Python builds must agree.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import TypeVar

from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason

__all__ = [
    "HASH_LENGTH",
    "MAX_NONCE",
    "MAX_TIME_MS",
    "TOKEN_PATTERN",
    "expect_bytes",
    "expect_enum",
    "expect_hash",
    "expect_int",
    "expect_list",
    "expect_map",
    "expect_sorted_unique",
    "expect_text",
    "expect_time_ms",
]

_R = TxRejectReason
E = TypeVar("E", bound=enum.Enum)

HASH_LENGTH = 32
MAX_NONCE = (1 << 64) - 1
# Milliseconds since the Unix epoch, below 2**48 (year 10889): room for any real clock while
# keeping every time sum (time + duration) far inside the codec's 64-bit integers.
MAX_TIME_MS = (1 << 48) - 1
# Identifiers (producer, source, detector, validator, key ids): ASCII, no spaces, bounded.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]*")
# C0/C1 controls, DEL, line/paragraph separators, zero-width and bidirectional overrides,
# BOM: characters that hide or reorder what an analyst reads.
_FORBIDDEN_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")


def expect_map(
    value: object, field: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, object]:
    """``value`` as a map whose keys are exactly ``required`` plus any of ``optional``."""
    if type(value) is not dict:
        raise TxRejected(_R.BAD_STRUCTURE, "expected a map", field)
    keys = value.keys()
    for key in required:
        if key not in keys:
            raise TxRejected(_R.BAD_STRUCTURE, f"missing field {key!r}", field)
    if len(keys) > len(required):
        allowed = set(required).union(optional)
        for key in keys:
            if key not in allowed:
                raise TxRejected(_R.BAD_STRUCTURE, f"unknown field {key!r}", field)
    return value


def expect_int(value: object, field: str, low: int, high: int, reason: TxRejectReason) -> int:
    """An ``int`` (never a ``bool``) in ``low..high`` inclusive."""
    if type(value) is not int:
        raise TxRejected(_R.WRONG_TYPE, f"expected an integer, got {type(value).__name__}",
                         field)
    if not low <= value <= high:
        raise TxRejected(reason, f"{value} is outside {low}..{high}", field)
    return value


def expect_time_ms(value: object, field: str, reason: TxRejectReason) -> int:
    """Milliseconds since the Unix epoch, 1..:data:`MAX_TIME_MS`."""
    return expect_int(value, field, 1, MAX_TIME_MS, reason)


def expect_text(
    value: object,
    field: str,
    max_bytes: int,
    reason: TxRejectReason = _R.BAD_TEXT,
    pattern: re.Pattern[str] | None = None,
    *,
    allow_empty: bool = False,
) -> str:
    """Text of at most ``max_bytes`` UTF-8 bytes, without control or invisible characters;
    if ``pattern`` is given the whole text must match it."""
    if type(value) is not str:
        raise TxRejected(_R.WRONG_TYPE, f"expected text, got {type(value).__name__}", field)
    if not value and not allow_empty:
        raise TxRejected(reason, "must not be empty", field)
    # len(str) <= UTF-8 length <= 4 * len(str): skip the encode for obviously short text.
    if len(value) > max_bytes or (4 * len(value) > max_bytes
                                  and len(value.encode("utf-8")) > max_bytes):
        raise TxRejected(reason, f"longer than {max_bytes} bytes", field)
    if pattern is not None:
        if pattern.fullmatch(value) is None:
            raise TxRejected(reason, "has characters or a form that is not allowed", field)
    elif _FORBIDDEN_TEXT.search(value) is not None:
        raise TxRejected(reason, "contains control or invisible characters", field)
    return value


def expect_bytes(value: object, field: str, length: int, reason: TxRejectReason) -> bytes:
    """A byte string of exactly ``length`` bytes."""
    if type(value) is not bytes:
        raise TxRejected(_R.WRONG_TYPE, f"expected bytes, got {type(value).__name__}", field)
    if len(value) != length:
        raise TxRejected(reason, f"expected {length} bytes, got {len(value)}", field)
    return value


def expect_hash(value: object, field: str) -> bytes:
    """A 32-byte SHA-256 digest."""
    return expect_bytes(value, field, HASH_LENGTH, _R.BAD_HASH)


def expect_list(value: object, field: str, max_items: int, min_items: int = 0) -> list[object]:
    """An array of ``min_items..max_items`` elements (elements are checked by the caller)."""
    if type(value) is not list:
        raise TxRejected(_R.WRONG_TYPE, f"expected an array, got {type(value).__name__}",
                         field)
    if len(value) > max_items:
        raise TxRejected(_R.LIST_TOO_LONG, f"{len(value)} items, at most {max_items}", field)
    if len(value) < min_items:
        raise TxRejected(_R.EMPTY_LIST, f"needs at least {min_items} item(s)", field)
    return value


def expect_enum(value: object, enum_type: type[E], field: str, reason: TxRejectReason) -> E:
    """A member of a text-valued enum, given by its value."""
    if type(value) is not str:
        raise TxRejected(_R.WRONG_TYPE, f"expected text, got {type(value).__name__}", field)
    # The enum's own value table first (a dict lookup, what ``enum_type(value)`` does before
    # its slower generic path); anything not found there takes the full constructor.
    member = enum_type._value2member_map_.get(value)
    if member is not None:
        return member  # type: ignore[return-value]
    try:
        return enum_type(value)
    except ValueError:
        raise TxRejected(reason, f"{value[:32]!r} is not a known value", field) from None


def expect_sorted_unique(items: Sequence[bytes] | Sequence[str], field: str) -> None:
    """A set-like list must be strictly ascending, so one set has exactly one encoding."""
    for index in range(1, len(items)):
        if not items[index - 1] < items[index]:  # type: ignore[operator]
            raise TxRejected(_R.NOT_CANONICAL_ORDER,
                             "items must be unique and in ascending order", field)
