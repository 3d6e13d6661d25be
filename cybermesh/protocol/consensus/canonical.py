"""A fast path to the canonical CBOR of consensus messages (same bytes as the codec).

Block ids, QC digests, statements and the wire form are encodings of small arrays of
non-negative integers, byte strings, text and null, computed for every message a node sends or
receives. :func:`encode` produces them without the general encoder's per-item dispatch and
checks, and hands anything else (a negative or oversized integer, a bool, a map, text that is
not valid UTF-8, deep nesting) to :func:`cybermesh.protocol.codec.encode`, so the result is
always exactly the codec's RFC 8949 core deterministic encoding (property-tested).
"""

from __future__ import annotations

import struct

from cybermesh.protocol.codec import CborEncodable
from cybermesh.protocol.codec import encode as codec_encode

_HEADS = tuple(bytes((i,)) for i in range(256))
_pack_u8 = struct.Struct(">BB").pack
_pack_u16 = struct.Struct(">BH").pack
_pack_u32 = struct.Struct(">BI").pack
_pack_u64 = struct.Struct(">BQ").pack
_UINT64_LIMIT = 1 << 64
_MAX_DEPTH = 16
_NULL = b"\xf6"


class _Fallback(Exception):
    """A value outside the fast path: let the codec encode (or refuse) it."""


def head(major_bits: int, argument: int) -> bytes:
    """The shortest head for ``argument`` under ``major_bits`` (major type already shifted)."""
    if argument < 24:
        return _HEADS[major_bits | argument]
    if argument < 0x100:
        return _pack_u8(major_bits | 24, argument)
    if argument < 0x10000:
        return _pack_u16(major_bits | 25, argument)
    if argument < 0x100000000:
        return _pack_u32(major_bits | 26, argument)
    return _pack_u64(major_bits | 27, argument)


def _emit(value: object, out: list[bytes], depth: int) -> None:
    value_type = type(value)
    if value_type is int:
        if not 0 <= value < _UINT64_LIMIT:  # type: ignore[operator]
            raise _Fallback
        out.append(head(0x00, value))  # type: ignore[arg-type]
    elif value_type is bytes:
        out.append(head(0x40, len(value)))  # type: ignore[arg-type]
        out.append(value)  # type: ignore[arg-type]
    elif value_type is str:
        raw = value.encode("utf-8")  # type: ignore[attr-defined]
        out.append(head(0x60, len(raw)))
        out.append(raw)
    elif value is None:
        out.append(_NULL)
    elif value_type is list or value_type is tuple:
        if depth == 0:
            raise _Fallback
        out.append(head(0x80, len(value)))  # type: ignore[arg-type]
        for item in value:  # type: ignore[attr-defined]
            _emit(item, out, depth - 1)
    else:
        raise _Fallback


def encode(value: CborEncodable) -> bytes:
    """Exactly ``cybermesh.protocol.codec.encode(value)``, faster for message-shaped values."""
    out: list[bytes] = []
    try:
        _emit(value, out, _MAX_DEPTH)
    except (_Fallback, UnicodeEncodeError):
        return codec_encode(value)
    return b"".join(out)
