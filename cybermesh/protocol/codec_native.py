"""Fast path of the canonical CBOR decoder: cbor2's C decoder, then proof of canonical form.

:func:`cybermesh.protocol.codec.decode` asks :func:`decode_if_canonical` first and falls back
to its own strict pure-Python decoder whenever this returns :data:`NOT_PROVEN`. The fast path
only ever *accepts*; it never decides a refusal. So the set of accepted inputs, the decoded
values and every error (reason, offset) stay exactly those of the strict decoder, and a quirk
of cbor2 can at worst cost the time of the strict decode.

An input is accepted here only when all of these hold, which together are the canonical rules:

1. cbor2 decodes it with indefinite lengths and duplicate keys refused;
2. the value holds only ``int`` (in the 64-bit major type 0/1 range), ``str``, ``bytes``,
   ``bool``, ``None``, ``list`` and ``dict`` (exact types: no floats, simple values,
   ``undefined`` or objects made from tags), map keys are ``int``, ``str`` or ``bytes`` in
   strictly ascending order of their encoded bytes (RFC 8949 order), nesting and item count
   within the limits;
3. cbor2's encoding of that value is byte for byte the input. cbor2 always writes the
   shortest heads and definite lengths, and writes a map's keys in the dict's order, which is
   the order they had on the wire; so this proves shortest forms, the absence of tags (a tag
   that decoded to a plain value is not written back) and of trailing bytes. For a value of
   the types in (2) with sorted keys, cbor2's bytes are exactly what our encoder writes, so
   the strict decoder would return an equal value of the same types.

Why ``except Exception``: whatever cbor2 raises (its own errors, or a tag's semantic decoder
failing) only means "not proven here", and the strict decoder, which raises nothing but
``CodecError``, then gives the verdict. Nothing is swallowed: every refusal is the strict one.
"""

from __future__ import annotations

from typing import Any, Final

import cbor2

__all__ = ["NOT_PROVEN", "decode_if_canonical"]

NOT_PROVEN: Final = object()
"""Returned when the fast path cannot prove the input canonical (the caller decodes strictly)."""

_UINT64_MAX = (1 << 64) - 1
_NEGINT_MIN = -(1 << 64)
_loads = cbor2.loads
_dumps = cbor2.dumps


def decode_if_canonical(data: bytes, max_depth: int, max_items: int) -> Any:
    """The value of ``data`` if it is provably one canonical item within the limits, else
    :data:`NOT_PROVEN`. ``data`` is exact ``bytes`` already checked against ``max_bytes``."""
    try:
        # One more level than allowed, so cbor2 stops runaway nesting but the exact depth
        # rule (and its error) stays with _plain_* and the strict decoder.
        value = _loads(data, allow_indefinite=False, allow_duplicate_keys=False,
                       max_depth=max_depth + 1)
        budget = [max_items]
        value_type = type(value)
        if value_type is list:
            if not _plain_array(value, max_depth, budget):
                return NOT_PROVEN
        elif value_type is dict:
            if not _plain_map(value, max_depth, budget):
                return NOT_PROVEN
        elif not _plain_scalar(value):
            return NOT_PROVEN
        if _dumps(value) != data:
            return NOT_PROVEN
    except Exception:  # noqa: BLE001 -- not proven; the strict decoder gives the verdict
        return NOT_PROVEN
    return value


def _plain_scalar(value: object) -> bool:
    value_type = type(value)
    if value_type is int:
        return _NEGINT_MIN <= value <= _UINT64_MAX  # type: ignore[operator]
    return value_type is str or value_type is bytes or value_type is bool or value is None


def _plain_element(value: object, depth_left: int, budget: list[int]) -> bool:
    """One array element or map value (``depth_left`` already counts its container)."""
    value_type = type(value)
    if value_type is str or value_type is bytes or value_type is bool or value is None:
        return True
    if value_type is int:
        return _NEGINT_MIN <= value <= _UINT64_MAX  # type: ignore[operator]
    if value_type is list:
        return _plain_array(value, depth_left, budget)  # type: ignore[arg-type]
    if value_type is dict:
        return _plain_map(value, depth_left, budget)  # type: ignore[arg-type]
    return False


def _plain_array(items: list[object], depth_left: int, budget: list[int]) -> bool:
    if depth_left == 0:
        return False
    budget[0] -= len(items)
    if budget[0] < 0:
        return False
    depth_left -= 1
    for item in items:
        # Leaves inlined (most elements are text, bytes or integers): a call per element
        # would cost more than the check.
        item_type = type(item)
        if item_type is str or item_type is bytes:
            continue
        if item_type is int:
            if _NEGINT_MIN <= item <= _UINT64_MAX:  # type: ignore[operator]
                continue
            return False
        if not _plain_element(item, depth_left, budget):
            return False
    return True


def _plain_map(  # noqa: PLR0911 -- one exit per refused rule, in one flat loop
    mapping: dict[object, object], depth_left: int, budget: list[int]
) -> bool:
    if depth_left == 0:
        return False
    budget[0] -= len(mapping)
    if budget[0] < 0:
        return False
    depth_left -= 1
    # Text keys (major type 3) sort after every other key type, and among themselves by
    # (UTF-8 length, code points): compared inline, as nearly every map here has text keys.
    text_length = -1
    text = ""
    previous: tuple[Any, ...] = (-1,)
    for key, item in mapping.items():
        if type(key) is str:
            length = len(key) if key.isascii() else len(key.encode())
            if length < text_length or (length == text_length and key <= text):
                return False
            text_length = length
            text = key
        elif text_length >= 0:
            return False  # a non-text key after a text key
        else:
            order = _key_order(key)
            if order is None or order <= previous:
                return False
            previous = order
        item_type = type(item)
        if item_type is str or item_type is bytes:
            continue
        if item_type is int:
            if _NEGINT_MIN <= item <= _UINT64_MAX:  # type: ignore[operator]
                continue
            return False
        if not _plain_element(item, depth_left, budget):
            return False
    return True


def _key_order(key: object) -> tuple[Any, ...] | None:
    """A sort key with the order of the key's canonical encoding, or None if not a valid key.

    Encoded bytes start with the major type (unsigned < negative < bytes < text), then the
    shortest head, which grows with the argument (the unsigned value, ``-1 - value`` for a
    negative, the length for a string), then a string's bytes; Python orders ``str`` by code
    point, which is the order of their UTF-8 bytes.
    """
    if type(key) is str:
        return (3, len(key) if key.isascii() else len(key.encode()), key)
    if type(key) is int:
        if key >= 0:
            return (0, key) if key <= _UINT64_MAX else None
        return (1, -1 - key) if key >= _NEGINT_MIN else None
    if type(key) is bytes:
        return (2, len(key), key)
    return None
