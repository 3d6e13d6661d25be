"""Canonical CBOR: RFC 8949 section 4.2.1 core deterministic encoding, strictly decoded.

Every message that is hashed or signed travels in this encoding, so one value has exactly one
byte string and every validator decodes the same bytes to the same value. The decoder accepts
only what :func:`encode` would produce:

* integers in the 64-bit major type 0/1 range, always in the shortest head;
* byte and text strings, arrays and maps of definite length only, shortest length heads;
* map keys are integers, text or byte strings, sorted by the bytewise lexicographic order of
  their encoded bytes (RFC 8949 order, *not* RFC 7049's length-first order), without duplicates;
* the simple values false, true and null; no other simple value, no floats, no tags at all;
* text strings are valid UTF-8 (no surrogates, no overlong forms);
* no bytes after the top-level item.

Input from the network is hostile: the decoder checks every claimed length against the bytes
actually present and against :class:`DecodeLimits` *before* it allocates anything, so a header
claiming 2**32 elements or a 4 GiB string in a 100-byte input fails at once. ``decode`` and
``encode`` raise :class:`CodecError` and nothing else.

``decode`` first tries cbor2's C decoder and accepts its value only with a proof that the input
is the canonical encoding of it (:mod:`cybermesh.protocol.codec_native`); everything else,
every refusal included, goes to the strict decoder below (also :func:`decode_strict`), so
results and errors are the strict decoder's. The strict decoder is written for speed too (one
function per item, index arithmetic over ``bytes``, no per-byte calls).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypeAlias

from cybermesh.protocol.codec_native import NOT_PROVEN, decode_if_canonical

__all__ = [
    "DEFAULT_LIMITS",
    "CborEncodable",
    "CborValue",
    "CodecError",
    "CodecErrorReason",
    "DecodeLimits",
    "decode",
    "decode_strict",
    "encode",
    "encoded_head",
]

CborValue: TypeAlias = (
    bool
    | int
    | bytes
    | str
    | list["CborValue"]
    | tuple["CborValue", ...]
    | dict["CborValue", "CborValue"]
    | None
)
"""What :func:`decode` returns (arrays as ``list``, maps as ``dict``)."""

CborEncodable: TypeAlias = (
    bool
    | int
    | bytes
    | bytearray
    | memoryview
    | str
    | Sequence["CborEncodable"]
    | Mapping[Any, "CborEncodable"]
    | None
)
"""What :func:`encode` takes: ``CborValue`` widened to read-only (covariant) container types so
that a ``dict[str, int]`` or ``list[bytes]`` type-checks. Map keys are checked at run time."""


class CodecErrorReason(enum.Enum):
    """Why a byte string or a value was refused; stable names for metrics and tests."""

    TRUNCATED = "truncated"
    TRAILING_BYTES = "trailing_bytes"
    INDEFINITE_LENGTH = "indefinite_length"
    NON_SHORTEST_FORM = "non_shortest_form"
    UNSORTED_KEYS = "unsorted_keys"
    DUPLICATE_KEY = "duplicate_key"
    FORBIDDEN_KEY_TYPE = "forbidden_key_type"
    FORBIDDEN_TAG = "forbidden_tag"
    FORBIDDEN_SIMPLE = "forbidden_simple"
    FLOAT_NOT_ALLOWED = "float_not_allowed"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    TOO_MANY_ITEMS = "too_many_items"
    INVALID_UTF8 = "invalid_utf8"
    UNSUPPORTED_TYPE = "unsupported_type"
    INTEGER_OUT_OF_RANGE = "integer_out_of_range"


class CodecError(ValueError):
    """The one exception of this module: a refused input with a reason and a byte offset."""

    reason: CodecErrorReason
    detail: str
    offset: int | None

    def __init__(self, reason: CodecErrorReason, detail: str, offset: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.offset = offset
        where = "" if offset is None else f" at byte {offset}"
        super().__init__(f"{reason.value}: {detail}{where}")


# Hard ceiling on nesting so a caller-chosen limit can never exhaust the interpreter stack
# (which would raise RecursionError instead of CodecError).
MAX_SUPPORTED_DEPTH = 256


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Bounds checked before any allocation.

    ``max_bytes`` bounds the whole input, ``max_depth`` the nesting of arrays and maps (a
    top-level array has depth 1), ``max_items`` the total count of array elements plus map
    pairs in the whole input.
    """

    max_bytes: int = 1 << 20
    max_depth: int = 16
    max_items: int = 65536

    def __post_init__(self) -> None:
        if self.max_bytes < 1 or self.max_items < 0:
            raise ValueError("DecodeLimits: max_bytes must be >= 1 and max_items >= 0")
        if not 0 <= self.max_depth <= MAX_SUPPORTED_DEPTH:
            raise ValueError(f"DecodeLimits: max_depth must be in 0..{MAX_SUPPORTED_DEPTH}")


DEFAULT_LIMITS = DecodeLimits()

_R = CodecErrorReason
_UINT64_MAX = (1 << 64) - 1
_NEGINT_MIN = -(1 << 64)
# Smallest argument that needs the 2-, 4- and 8-byte head; anything below is non-shortest.
_MIN_FOR_SIZE = {2: 0x100, 4: 0x10000, 8: 0x100000000}

# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------

_ONE_BYTE_HEADS = tuple(bytes((i,)) for i in range(256))
_pack_u8 = struct.Struct(">BB").pack
_pack_u16 = struct.Struct(">BH").pack
_pack_u32 = struct.Struct(">BI").pack
_pack_u64 = struct.Struct(">BQ").pack
_FALSE, _TRUE, _NULL = b"\xf4", b"\xf5", b"\xf6"


def _head(major_bits: int, argument: int) -> bytes:
    """Shortest head for ``argument`` under ``major_bits`` (major type already shifted)."""
    if argument < 24:
        return _ONE_BYTE_HEADS[major_bits | argument]
    if argument < 0x100:
        return _pack_u8(major_bits | 24, argument)
    if argument < 0x10000:
        return _pack_u16(major_bits | 25, argument)
    if argument < 0x100000000:
        return _pack_u32(major_bits | 26, argument)
    return _pack_u64(major_bits | 27, argument)


def encoded_head(major_type: int, argument: int) -> bytes:
    """The shortest head of major type ``major_type`` (0..7) with ``argument`` (0..2**64-1):
    for callers that check a known canonical layout byte for byte."""
    return _head(major_type << 5, argument)


def _encode_int(value: int) -> bytes:
    if value >= 0:
        if value > _UINT64_MAX:
            raise CodecError(_R.INTEGER_OUT_OF_RANGE, f"integer {value} exceeds 2**64-1")
        return _head(0x00, value)
    if value < _NEGINT_MIN:
        raise CodecError(_R.INTEGER_OUT_OF_RANGE, f"integer {value} is below -2**64")
    return _head(0x20, -1 - value)


def _encode_text(value: str) -> bytes:
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CodecError(_R.INVALID_UTF8, "text is not encodable as UTF-8 (lone surrogate)") \
            from exc
    return _head(0x60, len(raw)) + raw


def _encode_key(key: object) -> bytes:
    """Encoded bytes of a map key; only int, text and byte string keys are allowed.

    Booleans and null are refused as keys because Python's dict cannot keep ``True`` and ``1``
    apart, and containers because they are not hashable: refusing them keeps decode and encode
    exact inverses.
    """
    key_type = type(key)
    if key_type is str:
        return _encode_text(key)  # type: ignore[arg-type]
    if key_type is int:
        return _encode_int(key)  # type: ignore[arg-type]
    if key_type is bytes:
        return _head(0x40, len(key)) + key  # type: ignore[arg-type,operator]
    if isinstance(key, bool) or key is None or not isinstance(key, int | str | bytes):
        raise CodecError(_R.FORBIDDEN_KEY_TYPE,
                         f"map key of type {key_type.__name__} (only int, str, bytes)")
    return _encode_scalar_subclass(key)


def _encode_scalar_subclass(value: object) -> bytes:
    """Subclasses of int/str/bytes (IntEnum, StrEnum, ...) encode as their underlying value."""
    if isinstance(value, int):
        return _encode_int(int(value))
    if isinstance(value, str):
        return _encode_text(str.__str__(value))
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return _head(0x40, len(raw)) + raw
    raise CodecError(_R.UNSUPPORTED_TYPE, f"cannot encode {type(value).__name__}")


def _encode_array(value: Sequence[object], out: bytearray, depth_left: int) -> None:
    if depth_left == 0:
        raise CodecError(_R.TOO_DEEP, "nesting deeper than the encoder limit")
    out += _head(0x80, len(value))
    depth_left -= 1
    for element in value:
        _encode_into(element, out, depth_left)


def _encode_map(value: Mapping[object, object], out: bytearray, depth_left: int) -> None:
    if depth_left == 0:
        raise CodecError(_R.TOO_DEEP, "nesting deeper than the encoder limit")
    pairs = [(_encode_key(key), element) for key, element in value.items()]
    pairs.sort(key=itemgetter(0))
    out += _head(0xA0, len(pairs))
    depth_left -= 1
    previous = b""
    for key_bytes, element in pairs:
        if key_bytes == previous:
            raise CodecError(_R.DUPLICATE_KEY, "two map keys encode to the same bytes")
        previous = key_bytes
        out += key_bytes
        _encode_into(element, out, depth_left)


def _encode_into(value: object, out: bytearray, depth_left: int) -> None:
    # Exact-type checks first: they are the fast path and keep bool apart from int.
    value_type = type(value)
    if value_type is int:
        out += _encode_int(value)  # type: ignore[arg-type]
    elif value_type is str:
        out += _encode_text(value)  # type: ignore[arg-type]
    elif value_type is bytes:
        out += _head(0x40, len(value))  # type: ignore[arg-type]
        out += value  # type: ignore[arg-type]
    elif value_type is bool:
        out += _TRUE if value else _FALSE
    elif value is None:
        out += _NULL
    elif value_type is dict:
        _encode_map(value, out, depth_left)  # type: ignore[arg-type]
    elif value_type is list or value_type is tuple:
        _encode_array(value, out, depth_left)  # type: ignore[arg-type]
    elif isinstance(value, float):
        raise CodecError(_R.FLOAT_NOT_ALLOWED, "floats are not part of the canonical encoding")
    elif isinstance(value, int | str | bytes | bytearray | memoryview):
        out += _encode_scalar_subclass(value)
    elif isinstance(value, Mapping):
        _encode_map(value, out, depth_left)
    elif isinstance(value, Sequence):
        _encode_array(value, out, depth_left)
    else:
        raise CodecError(_R.UNSUPPORTED_TYPE, f"cannot encode {value_type.__name__}")


def encode(value: CborEncodable, *, max_depth: int = DEFAULT_LIMITS.max_depth) -> bytes:
    """Encode ``value`` in RFC 8949 core deterministic encoding.

    Lists, tuples (and other sequences) become arrays, dicts (and other mappings) become maps
    with keys sorted by their encoded bytes. Subclasses of int, str and bytes (IntEnum,
    StrEnum) encode as their plain value; bytearray and memoryview as byte strings; floats,
    bignums outside the 64-bit range, lone surrogates, bool/null/container map keys and any
    other type raise :class:`CodecError`. ``max_depth`` (default: the decoder's default) keeps
    the encoder from producing what the default decoder refuses and stops reference cycles.
    """
    if not 0 <= max_depth <= MAX_SUPPORTED_DEPTH:
        raise CodecError(_R.TOO_DEEP, f"max_depth must be in 0..{MAX_SUPPORTED_DEPTH}")
    out = bytearray()
    _encode_into(value, out, max_depth)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------


def _decode_simple(data: bytes, pos: int, end: int, initial: int) -> tuple[CborValue, int]:
    info = initial & 0x1F
    if info == 20:
        return False, pos + 1
    if info == 21:
        return True, pos + 1
    if info == 22:
        return None, pos + 1
    if info < 24:
        name = "undefined" if info == 23 else f"simple({info})"
        raise CodecError(_R.FORBIDDEN_SIMPLE, f"{name} is not allowed", pos)
    if info == 24:
        if pos + 2 > end:
            raise CodecError(_R.TRUNCATED, "simple value byte missing", pos)
        raise CodecError(_R.FORBIDDEN_SIMPLE, f"simple({data[pos + 1]}) is not allowed", pos)
    if info <= 27:
        bits = 16 << (info - 25)
        raise CodecError(_R.FLOAT_NOT_ALLOWED, f"float{bits} is not allowed", pos)
    if info == 31:
        raise CodecError(_R.MALFORMED, "break code outside an indefinite-length item", pos)
    raise CodecError(_R.MALFORMED, f"reserved additional information {info}", pos)


def _decode_item(  # noqa: PLR0911, PLR0912, PLR0915 -- one flat dispatch is the fast path
    data: bytes, pos: int, end: int, depth_left: int, budget: list[int]
) -> tuple[CborValue, int]:
    if pos >= end:
        raise CodecError(_R.TRUNCATED, "input ends where an item should start", pos)
    initial = data[pos]
    major = initial >> 5
    info = initial & 0x1F
    if major >= 6:
        if major == 6:
            raise CodecError(_R.FORBIDDEN_TAG, "tags are not allowed", pos)
        return _decode_simple(data, pos, end, initial)
    if info < 24:
        argument = info
        start = pos + 1
    elif info == 24:
        start = pos + 2
        if start > end:
            raise CodecError(_R.TRUNCATED, "head argument cut short", pos)
        argument = data[pos + 1]
        if argument < 24:
            raise CodecError(_R.NON_SHORTEST_FORM, f"{argument} fits in the initial byte", pos)
    elif info < 28:
        size = 1 << (info - 24)
        start = pos + 1 + size
        if start > end:
            raise CodecError(_R.TRUNCATED, "head argument cut short", pos)
        argument = int.from_bytes(data[pos + 1:start], "big")
        if argument < _MIN_FOR_SIZE[size]:
            raise CodecError(_R.NON_SHORTEST_FORM,
                             f"{argument} encoded in {size} bytes has a shorter form", pos)
    elif info == 31 and major >= 2:
        raise CodecError(_R.INDEFINITE_LENGTH, "indefinite-length items are not allowed", pos)
    else:
        raise CodecError(_R.MALFORMED, f"reserved additional information {info}", pos)

    if major == 0:
        return argument, start
    if major == 1:
        return -1 - argument, start
    if major == 2:
        stop = start + argument
        if stop > end:
            raise CodecError(_R.TRUNCATED, f"byte string of {argument} bytes overruns input", pos)
        return data[start:stop], stop
    if major == 3:
        stop = start + argument
        if stop > end:
            raise CodecError(_R.TRUNCATED, f"text string of {argument} bytes overruns input", pos)
        try:
            return data[start:stop].decode("utf-8"), stop
        except UnicodeDecodeError as exc:
            raise CodecError(_R.INVALID_UTF8, f"text is not valid UTF-8 ({exc.reason})",
                             start + exc.start) from None

    # Containers: every element takes at least one byte, every map pair at least two, so a
    # claimed count is checked against the remaining input before anything is allocated.
    if depth_left == 0:
        raise CodecError(_R.TOO_DEEP, "nesting exceeds max_depth", pos)
    depth_left -= 1
    if major == 4:
        if argument > end - start:
            raise CodecError(_R.TRUNCATED, f"array of {argument} items overruns input", pos)
        budget[0] -= argument
        if budget[0] < 0:
            raise CodecError(_R.TOO_MANY_ITEMS, "total item count exceeds max_items", pos)
        array: list[CborValue] = []
        append = array.append
        for _ in range(argument):
            element, start = _decode_item(data, start, end, depth_left, budget)
            append(element)
        return array, start

    if argument > (end - start) >> 1:
        raise CodecError(_R.TRUNCATED, f"map of {argument} pairs overruns input", pos)
    budget[0] -= argument
    if budget[0] < 0:
        raise CodecError(_R.TOO_MANY_ITEMS, "total item count exceeds max_items", pos)
    mapping: dict[CborValue, CborValue] = {}
    previous = b""
    for _ in range(argument):
        key_start = start
        key, start = _decode_item(data, start, end, depth_left, budget)
        key_type = type(key)
        if key_type is not str and key_type is not int and key_type is not bytes:
            raise CodecError(_R.FORBIDDEN_KEY_TYPE,
                             f"map key of type {key_type.__name__} (only int, str, bytes)",
                             key_start)
        key_bytes = data[key_start:start]
        if key_bytes <= previous:
            if key_bytes == previous:
                raise CodecError(_R.DUPLICATE_KEY, "map key repeated", key_start)
            raise CodecError(_R.UNSORTED_KEYS, "map keys not in bytewise order", key_start)
        previous = key_bytes
        mapping[key], start = _decode_item(data, start, end, depth_left, budget)
    return mapping, start


def _checked_bytes(data: object, limits: DecodeLimits) -> bytes:
    """``data`` as exact ``bytes`` within ``max_bytes`` (checked before any copy)."""
    if not isinstance(data, bytes) or type(data) is not bytes:
        if isinstance(data, bytes | bytearray | memoryview):
            size = data.nbytes if isinstance(data, memoryview) else len(data)
            if size > limits.max_bytes:
                raise CodecError(_R.TOO_LARGE, f"{size} bytes exceed max_bytes "
                                 f"{limits.max_bytes}")
            return bytes(data)
        raise CodecError(_R.UNSUPPORTED_TYPE, f"decode needs bytes, not {type(data).__name__}")
    if len(data) > limits.max_bytes:
        raise CodecError(_R.TOO_LARGE, f"{len(data)} bytes exceed max_bytes {limits.max_bytes}")
    return data


def decode(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> CborValue:
    """Decode exactly one canonical CBOR item from ``data``; refuse anything else.

    Arrays decode to lists and maps to dicts. Raises :class:`CodecError` (and only that) for
    non-canonical, malformed, truncated or over-limit input, and for trailing bytes.

    Canonical input is decoded by cbor2's C decoder and then proven canonical
    (:mod:`cybermesh.protocol.codec_native`); anything it cannot prove goes to
    :func:`decode_strict`, so results and errors are exactly the strict decoder's.
    """
    data = _checked_bytes(data, limits)
    value = decode_if_canonical(data, limits.max_depth, limits.max_items)
    if value is not NOT_PROVEN:
        return value  # type: ignore[no-any-return]
    return _decode_strict_bytes(data, limits)


def decode_strict(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> CborValue:
    """:func:`decode` by the pure-Python strict decoder alone: the reference the fast path is
    tested against, and the one that words every refusal."""
    return _decode_strict_bytes(_checked_bytes(data, limits), limits)


def _decode_strict_bytes(data: bytes, limits: DecodeLimits) -> CborValue:
    end = len(data)
    value, stop = _decode_item(data, 0, end, limits.max_depth, [limits.max_items])
    if stop != end:
        raise CodecError(_R.TRAILING_BYTES, f"{end - stop} bytes after the item", stop)
    return value
