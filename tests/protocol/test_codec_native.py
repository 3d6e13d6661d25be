"""The cbor2 fast path of ``decode`` against the strict pure-Python decoder.

``decode`` must accept exactly what ``decode_strict`` accepts, return the same value with the
same exact types (``bool`` is not ``int``), and refuse with the same reason, offset and text.
The fast path may only ever accept; these tests also show it does accept canonical input (else
it would be dead weight) and declines every non-canonical form.
"""

from __future__ import annotations

import os
import random

import pytest

from cybermesh.protocol.codec import (
    CborValue,
    CodecError,
    DecodeLimits,
    decode,
    decode_strict,
    encode,
)
from cybermesh.protocol.codec_native import NOT_PROVEN, decode_if_canonical

pytestmark = pytest.mark.unit

_BOUNDARIES = [0, 1, 23, 24, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32, (1 << 64) - 1]


def _exact(value: object) -> object:
    """``value`` with every scalar tagged by its exact type, so ``True`` never equals ``1``."""
    if type(value) is list:
        return ("list", [_exact(item) for item in value])
    if type(value) is dict:
        return ("dict", [(_exact(key), _exact(item)) for key, item in value.items()])
    return (type(value).__name__, value)


def _outcome(decoder: object, data: bytes, limits: DecodeLimits) -> object:
    try:
        return ("ok", _exact(decoder(data, limits)))  # type: ignore[operator]
    except CodecError as error:
        return ("refused", error.reason, error.offset, str(error))


def _random_scalar(rng: random.Random) -> CborValue:
    roll = rng.randrange(8)
    if roll == 0:
        number = rng.choice(_BOUNDARIES) + rng.choice((-1, 0, 0, 1))
        number = min(max(number, 0), (1 << 64) - 1)
        return number if rng.random() < 0.5 else -1 - number
    if roll == 1:
        return rng.randrange(-30, 30)
    if roll == 2:
        return bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 23, 24, 32, 64))))
    if roll == 3:
        return "".join(rng.choice("az09_-é€😀\u00ff") for _ in range(rng.randrange(0, 30)))
    if roll == 4:
        return rng.choice((True, False, None))
    return rng.choice(("source", "severity", "ip", "a", "", "payload_ref"))


def _random_key(rng: random.Random) -> str | int | bytes:
    roll = rng.randrange(4)
    if roll == 0:
        return rng.choice((0, 1, 23, 24, 1000, -1, -24, -25, (1 << 64) - 1, -(1 << 64)))
    if roll == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 4)))
    return "".join(rng.choice("abz\u00e9\u20ac") for _ in range(rng.randrange(0, 26)))


def _random_value(rng: random.Random, depth: int) -> CborValue:
    if depth == 0 or rng.random() < 0.4:
        return _random_scalar(rng)
    if rng.random() < 0.5:
        return [_random_value(rng, depth - 1) for _ in range(rng.randrange(0, 6))]
    return {_random_key(rng): _random_value(rng, depth - 1) for _ in range(rng.randrange(0, 6))}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    mutated = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        operation = rng.randrange(5)
        position = rng.randrange(len(mutated) + 1)
        if operation == 0 and position < len(mutated):
            mutated[position] ^= 1 << rng.randrange(8)
        elif operation == 1:
            mutated.insert(position, rng.choice((0x00, 0x18, 0x1F, 0x5F, 0x9F, 0xBF, 0xC2,
                                                 0xD8, 0xF7, 0xF9, 0xFB, 0xFF,
                                                 rng.randrange(256))))
        elif operation == 2 and position < len(mutated):
            del mutated[position]
        elif operation == 3:
            del mutated[position:]
        else:
            mutated += bytes((rng.randrange(256),))
    return bytes(mutated)


def test_decode_agrees_with_the_strict_decoder_on_random_and_mutated_items() -> None:
    seed = int(os.environ.get("CODEC_NATIVE_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"codec native seed: {seed} (replay with CODEC_NATIVE_SEED={seed})")
    rng = random.Random(seed)
    tight = DecodeLimits(max_bytes=4096, max_depth=3, max_items=24)
    loose = DecodeLimits()
    fast_accepted = 0
    for _ in range(4000):
        canonical = encode(_random_value(rng, 4))
        for data in (canonical, _mutate(rng, canonical), _mutate(rng, canonical)):
            for limits in (loose, tight):
                expected = _outcome(decode_strict, data, limits)
                assert _outcome(decode, data, limits) == expected, \
                    f"seed {seed}: {data.hex()} with {limits}"
                fast = decode_if_canonical(data, limits.max_depth, limits.max_items)
                if fast is not NOT_PROVEN:
                    fast_accepted += 1
                    assert ("ok", _exact(fast)) == expected, f"seed {seed}: {data.hex()}"
    assert fast_accepted > 4000, f"seed {seed}: the fast path proved almost nothing"


@pytest.mark.parametrize("value", [
    0, 23, 24, (1 << 64) - 1, -(1 << 64), "", "é€😀", b"", b"\x00" * 64, True, False, None,
    [1, [2, [3]]], {"a": 1, "bb": 2, 1000: 3, -1: 4, b"k": 5},
    {"source": "s", "offender": ["ip", "10.0.0.1"], "severity": 7},
])
def test_fast_path_proves_canonical_items(value: CborValue) -> None:
    data = encode(value)
    result = decode_if_canonical(data, 16, 65536)
    assert result is not NOT_PROVEN
    assert _exact(result) == _exact(decode_strict(data))  # same wire order and exact types


@pytest.mark.parametrize("hex_bytes", [
    "1817",  # 23 in two bytes: non-shortest integer
    "190017", "3817",  # non-shortest unsigned / negative
    "5801ff", "7801" + "61",  # non-shortest string lengths
    "980100",  # non-shortest array length
    "9f00ff", "bf0000ff", "5f41ffff", "7f6161ff",  # indefinite lengths
    "a202000100", "a2616200616100",  # unsorted keys
    "a201000100",  # duplicate key
    "a26161001903e800",  # {"a", 1000} in RFC 7049 length-first order, not RFC 8949
    "0000",  # trailing byte
    "fb3ff0000000000000", "f93c00", "fa3f800000",  # floats
    "f0", "f7", "f820",  # simple values, undefined
    "c24101", "c249010000000000000000",  # bignums, in and out of the 64-bit range
    "c074323031332d30332d32315432303a30343a30305a",  # tag 0 (a datetime)
    "d81c81d81d00",  # shared reference (cyclic)
    "d901008263616263d81900",  # string reference (tag 256 namespace, tag 25)
    "a1f500", "a1f600", "a18000", "a1a000",  # bool, null, array, map as key
    "62c328",  # invalid UTF-8
    "8181818100",  # deeper than the limit below
])
def test_fast_path_declines_every_non_canonical_form(hex_bytes: str) -> None:
    data = bytes.fromhex(hex_bytes)
    assert decode_if_canonical(data, 3, 65536) is NOT_PROVEN
    with pytest.raises(CodecError):
        decode_strict(data, DecodeLimits(max_depth=3))
    with pytest.raises(CodecError):
        decode(data, DecodeLimits(max_depth=3))


def test_fast_path_declines_past_the_item_budget() -> None:
    data = encode([[1, 2], [3]])
    assert decode_if_canonical(data, 16, 5) is not NOT_PROVEN
    assert decode_if_canonical(data, 16, 4) is NOT_PROVEN
