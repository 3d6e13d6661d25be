"""Canonical CBOR codec: round trips, every refusal reason, limits, hostile input."""

from __future__ import annotations

import enum
import os
import random
import tracemalloc
from collections.abc import Callable
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cybermesh.protocol.codec import (
    DEFAULT_LIMITS,
    CborValue,
    CodecError,
    CodecErrorReason,
    DecodeLimits,
    decode,
    decode_strict,
    encode,
)

pytestmark = pytest.mark.unit

R = CodecErrorReason

# --- strategies -----------------------------------------------------------------------------

integers = st.integers(min_value=-(1 << 64), max_value=(1 << 64) - 1)
# Values near the head-size boundaries are where shortest-form bugs live.
boundary_integers = st.sampled_from(
    [b + d for b in (0, 23, 24, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFFFF, 0x100000000,
                     (1 << 64) - 1) for d in (-1, 0, 1)
     if 0 <= b + d < (1 << 64)]
).flatmap(lambda n: st.sampled_from([n, -1 - n]))
keys = st.one_of(integers, boundary_integers, st.text(max_size=8), st.binary(max_size=8))
scalars = st.one_of(
    st.none(), st.booleans(), integers, boundary_integers, st.binary(max_size=40),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=6),
    ),
    max_leaves=30,
)


def same(left: object, right: object) -> bool:
    """Structural equality that, unlike ==, tells True from 1 and tuples from lists (as lists)."""
    if isinstance(left, tuple):
        left = list(left)
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right,
                                                                             strict=True))
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return left == right


def refused(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> CodecError:
    with pytest.raises(CodecError) as caught:
        decode(data, limits)
    return caught.value


# --- round trips ----------------------------------------------------------------------------


@given(values)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_decode_inverts_encode_for_any_value(value: CborValue) -> None:
    encoded = encode(value)
    decoded = decode(encoded)
    assert same(value, decoded)
    assert encode(decoded) == encoded


@given(st.binary(max_size=64))
@settings(max_examples=2000)
@example(b"")
@example(b"\xa1\x01")
def test_random_bytes_either_decode_canonically_or_raise_codec_error(data: bytes) -> None:
    try:
        value = decode(data)
    except CodecError:
        return
    assert encode(value) == data


@given(values, st.data())
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_encodings_either_decode_canonically_or_raise_codec_error(
    value: CborValue, data: st.DataObject
) -> None:
    mutated = bytearray(encode(value))
    for _ in range(data.draw(st.integers(1, 4))):
        operation = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        position = data.draw(st.integers(0, max(len(mutated) - 1, 0)))
        if operation == "flip" and mutated:
            mutated[position] ^= 1 << data.draw(st.integers(0, 7))
        elif operation == "insert":
            mutated.insert(position, data.draw(st.integers(0, 255)))
        elif operation == "delete" and mutated:
            del mutated[position]
        elif operation == "truncate":
            del mutated[position:]
    try:
        decoded = decode(bytes(mutated))
    except CodecError:
        return
    assert encode(decoded) == bytes(mutated)


def test_seeded_random_fuzz_never_raises_anything_but_codec_error() -> None:
    seed = int(os.environ.get("CODEC_FUZZ_SEED", random.SystemRandom().randrange(1 << 32)))
    print(f"codec fuzz seed: {seed} (replay with CODEC_FUZZ_SEED={seed})")
    rng = random.Random(seed)
    accepted = 0
    for _ in range(20000):
        # Bias towards container and string heads so deep structures get explored too.
        data = bytes(rng.choice((0x82, 0xA1, 0x61, 0x18, 0x00, rng.randrange(256)))
                     for _ in range(rng.randrange(1, 24)))
        try:
            value = decode(data)
        except CodecError:
            continue
        accepted += 1
        assert encode(value) == data, f"seed {seed}: {data.hex()} is not canonical"
    assert accepted > 0, f"seed {seed}: nothing accepted, the fuzz explores nothing"


# --- canonical form -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "hex_bytes"), [
    (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"), (65535, "19ffff"),
    (65536, "1a00010000"), (0xFFFFFFFF, "1affffffff"), (0x100000000, "1b0000000100000000"),
    (-24, "37"), (-25, "3818"), (-256, "38ff"), (-257, "390100"),
    (b"\x00" * 24, "5818" + "00" * 24), ("x" * 23, "77" + "78" * 23),
])
def test_encoder_picks_the_shortest_head(value: CborValue, hex_bytes: str) -> None:
    assert encode(value).hex() == hex_bytes
    assert decode(bytes.fromhex(hex_bytes)) == value


def test_map_keys_are_emitted_in_bytewise_order_of_their_encodings() -> None:
    value: CborValue = {"b": 0, b"a": 0, 10: 0, -1: 0, 1000: 0, "aa": 0, 24: 0}
    encoded = encode(value)
    # 0a < 1818 < 1903e8 < 20 < 4161 < 6162 < 626161
    assert encoded.hex() == "a7" "0a00" "181800" "1903e800" "2000" "416100" "616200" "62616100"
    assert list(decode(encoded)) == [10, 24, 1000, -1, b"a", "b", "aa"]


def test_tuple_encodes_as_array_and_decodes_as_list() -> None:
    assert encode((1, (2, 3))) == encode([1, [2, 3]])
    assert decode(encode((1, (2,)))) == [1, [2]]


def test_int_and_str_enum_members_encode_as_their_plain_values() -> None:
    class Kind(enum.IntEnum):
        VOTE = 7

    class Topic(enum.StrEnum):
        COMMITS = "control.commits.v1"

    assert encode({Kind.VOTE: Topic.COMMITS}) == encode({7: "control.commits.v1"})  # type: ignore[dict-item]


def test_other_mappings_and_sequences_encode_like_dict_and_list() -> None:
    class Items(list[int]):
        pass

    assert encode(MappingProxyType({"b": 1, "a": 2})) == encode({"a": 2, "b": 1})
    assert encode(Items([1, 2])) == encode(range(1, 3)) == encode([1, 2])
    assert encode(bytearray(b"ab")) == encode(memoryview(b"ab")) == encode(b"ab")


def test_bytearray_and_memoryview_inputs_decode_like_bytes() -> None:
    raw = encode({"h": b"\x01" * 32})
    assert decode(bytearray(raw)) == decode(memoryview(raw)) == decode(raw)


def test_error_offset_points_at_the_refused_item() -> None:
    error = refused(bytes.fromhex("83" "01" "02" "1800"))
    assert error.reason is R.NON_SHORTEST_FORM
    assert error.offset == 3
    assert "at byte 3" in str(error)
    assert isinstance(error, ValueError)


# --- every reason ---------------------------------------------------------------------------

# (reason, hex input) for decode; each reason that decode can produce appears here.
DECODE_REFUSALS = [
    (R.TRUNCATED, ""),
    (R.TRUNCATED, "18"),
    (R.TRUNCATED, "19ff"),
    (R.TRUNCATED, "1a000000"),
    (R.TRUNCATED, "1b00000000000000"),
    (R.TRUNCATED, "4401"),
    (R.TRUNCATED, "63e6b0"),
    (R.TRUNCATED, "820102" [:4]),
    (R.TRUNCATED, "a201020304"[:8]),
    (R.TRUNCATED, "f8"),
    (R.TRAILING_BYTES, "0000"),
    (R.TRAILING_BYTES, "a0f6"),
    (R.INDEFINITE_LENGTH, "5fff"),
    (R.INDEFINITE_LENGTH, "7fff"),
    (R.INDEFINITE_LENGTH, "9fff"),
    (R.INDEFINITE_LENGTH, "bfff"),
    (R.NON_SHORTEST_FORM, "1817"),
    (R.NON_SHORTEST_FORM, "1900ff"),
    (R.NON_SHORTEST_FORM, "1a0000ffff"),
    (R.NON_SHORTEST_FORM, "1b00000000ffffffff"),
    (R.NON_SHORTEST_FORM, "3800"),
    (R.NON_SHORTEST_FORM, "5800"),
    (R.NON_SHORTEST_FORM, "780161"),
    (R.NON_SHORTEST_FORM, "980101"),
    (R.NON_SHORTEST_FORM, "b9000101" "02"),
    (R.UNSORTED_KEYS, "a2" "02" "00" "01" "00"),
    (R.UNSORTED_KEYS, "a2" "6161" "00" "1903e8" "00"),
    (R.UNSORTED_KEYS, "a2" "20" "00" "01" "00"),
    (R.DUPLICATE_KEY, "a2" "01" "00" "01" "01"),
    (R.DUPLICATE_KEY, "a2" "6161" "00" "6161" "01"),
    (R.FORBIDDEN_KEY_TYPE, "a1" "f5" "00"),
    (R.FORBIDDEN_KEY_TYPE, "a1" "f6" "00"),
    (R.FORBIDDEN_KEY_TYPE, "a1" "80" "00"),
    (R.FORBIDDEN_KEY_TYPE, "a1" "a0" "00"),
    (R.FORBIDDEN_TAG, "c0" "60"),
    (R.FORBIDDEN_TAG, "d9d9f7" "00"),
    (R.FORBIDDEN_TAG, "df"),
    (R.FORBIDDEN_SIMPLE, "e0"),
    (R.FORBIDDEN_SIMPLE, "f3"),
    (R.FORBIDDEN_SIMPLE, "f7"),
    (R.FORBIDDEN_SIMPLE, "f818"),
    (R.FORBIDDEN_SIMPLE, "f814"),  # false in a two-byte form is not well-formed
    (R.FLOAT_NOT_ALLOWED, "f93c00"),
    (R.FLOAT_NOT_ALLOWED, "fa3f800000"),
    (R.FLOAT_NOT_ALLOWED, "fb3ff0000000000000"),
    (R.FLOAT_NOT_ALLOWED, "f9"),
    (R.MALFORMED, "1c"),
    (R.MALFORMED, "3d"),
    (R.MALFORMED, "5e"),
    (R.MALFORMED, "1f"),
    (R.MALFORMED, "3f"),
    (R.MALFORMED, "fc"),
    (R.MALFORMED, "ff"),
    (R.MALFORMED, "81ff"),
    (R.INVALID_UTF8, "61ff"),
    (R.INVALID_UTF8, "62c328"),
    (R.INVALID_UTF8, "62c0af"),  # overlong "/"
    (R.INVALID_UTF8, "63eda080"),  # UTF-8 encoded surrogate U+D800
    (R.INVALID_UTF8, "64f4908080"),  # beyond U+10FFFF
]


@pytest.mark.parametrize(("reason", "hex_bytes"), DECODE_REFUSALS,
                         ids=[f"{r.name}-{h}" for r, h in DECODE_REFUSALS])
def test_decode_refuses_with_the_precise_reason(reason: CodecErrorReason, hex_bytes: str) -> None:
    assert refused(bytes.fromhex(hex_bytes)).reason is reason


def test_decode_refuses_input_over_max_bytes_as_too_large() -> None:
    limits = DecodeLimits(max_bytes=8)
    assert decode(encode(b"1234567"), limits) == b"1234567"
    assert refused(encode(b"12345678"), limits).reason is R.TOO_LARGE
    assert refused(bytes(DEFAULT_LIMITS.max_bytes + 1)).reason is R.TOO_LARGE
    with pytest.raises(CodecError) as caught:
        decode(memoryview(bytes(9)), limits)
    assert caught.value.reason is R.TOO_LARGE


def test_decode_allows_exactly_max_depth_and_refuses_one_more() -> None:
    limits = DecodeLimits(max_depth=3)
    assert decode(bytes.fromhex("81818100"), limits) == [[[0]]]
    assert decode(bytes.fromhex("a101a101a10100"), limits) == {1: {1: {1: 0}}}
    assert refused(bytes.fromhex("8181818100"), limits).reason is R.TOO_DEEP
    assert refused(bytes.fromhex("a101a101a101a10100"), limits).reason is R.TOO_DEEP
    deep = b"\x81" * 16 + b"\x00"
    assert decode(deep) is not None
    assert refused(b"\x81" + deep).reason is R.TOO_DEEP
    assert refused(b"\x81" * 100_000 + b"\x00").reason in (R.TOO_DEEP, R.TOO_LARGE)


def test_decode_counts_items_across_the_whole_input() -> None:
    limits = DecodeLimits(max_items=4)
    assert decode(encode([[1], [2]]), limits) == [[1], [2]]  # 2 + 1 + 1 items
    assert refused(encode([[1, 2], [3]]), limits).reason is R.TOO_MANY_ITEMS
    assert refused(encode({1: 0, 2: 0, 3: 0, 4: [0]}), limits).reason is R.TOO_MANY_ITEMS
    assert refused(encode(list(range(DEFAULT_LIMITS.max_items + 1)))).reason is R.TOO_MANY_ITEMS


@pytest.mark.parametrize("hex_bytes", [
    "9b0000000100000000" + "00" * 91,  # array of 2**32 items in 100 bytes
    "bb0000000100000000" + "00" * 91,  # map of 2**32 pairs
    "5b0000000100000000" + "00" * 91,  # 4 GiB byte string
    "7b0000000100000000" + "00" * 91,  # 4 GiB text string
    "9bffffffffffffffff" + "00" * 91,
    "5bffffffffffffffff" + "00" * 91,
    "9a000f4240" + "00" * 95,  # a million items in 100 bytes
])
@pytest.mark.parametrize(("decoder", "peak_bytes"), [
    # The strict decoder checks every claim against the input before allocating anything.
    (decode_strict, 64 * 1024),
    # decode() first tries cbor2's C decoder, which reads a claimed string longer than 64 KiB
    # into one 64 KiB chunk before it finds the input short: bounded whatever the claim.
    (decode, 128 * 1024),
])
def test_huge_claimed_lengths_fail_fast_without_allocating(
    hex_bytes: str, decoder: Callable[[bytes], object], peak_bytes: int
) -> None:
    data = bytes.fromhex(hex_bytes)
    tracemalloc.start()
    try:
        with pytest.raises(CodecError) as caught:
            decoder(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.reason in (R.TRUNCATED, R.TOO_MANY_ITEMS)
    assert peak < peak_bytes


def test_huge_claimed_count_within_max_items_but_past_the_budget_is_too_many_items() -> None:
    # 70000 one-byte elements fit in max_bytes but exceed the default item budget.
    data = bytes.fromhex("9a00011170") + bytes(70000)
    assert refused(data).reason is R.TOO_MANY_ITEMS


def test_decode_refuses_a_non_bytes_input_as_unsupported_type() -> None:
    with pytest.raises(CodecError) as caught:
        decode("a0")  # type: ignore[arg-type]
    assert caught.value.reason is R.UNSUPPORTED_TYPE


@pytest.mark.parametrize(("value", "reason"), [
    (1 << 64, R.INTEGER_OUT_OF_RANGE),
    (-(1 << 64) - 1, R.INTEGER_OUT_OF_RANGE),
    ({1 << 64: 0}, R.INTEGER_OUT_OF_RANGE),
    (1.0, R.FLOAT_NOT_ALLOWED),
    ([0.5], R.FLOAT_NOT_ALLOWED),
    ("\ud800", R.INVALID_UTF8),
    ({"\udfff": 1}, R.INVALID_UTF8),
    ({1, 2}, R.UNSUPPORTED_TYPE),
    (object(), R.UNSUPPORTED_TYPE),
    ({True: 1}, R.FORBIDDEN_KEY_TYPE),
    ({None: 1}, R.FORBIDDEN_KEY_TYPE),
    ({(1, 2): 1}, R.FORBIDDEN_KEY_TYPE),
    ({1.5: 1}, R.FORBIDDEN_KEY_TYPE),
    ([[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]], R.TOO_DEEP),
])
def test_encode_refuses_with_the_precise_reason(value: object, reason: CodecErrorReason) -> None:
    with pytest.raises(CodecError) as caught:
        encode(value)  # type: ignore[arg-type]
    assert caught.value.reason is reason


def test_encode_refuses_two_keys_that_encode_alike_as_duplicate() -> None:
    class Other(int):
        """A distinct Python key (own hash) that encodes like the int 1."""

        def __hash__(self) -> int:
            return 12345

        def __eq__(self, other: object) -> bool:
            return self is other

    with pytest.raises(CodecError) as caught:
        encode({1: "a", Other(1): "b"})  # type: ignore[dict-item]
    assert caught.value.reason is R.DUPLICATE_KEY


def test_encode_stops_reference_cycles_as_too_deep() -> None:
    cycle: list[CborValue] = []
    cycle.append(cycle)
    with pytest.raises(CodecError) as caught:
        encode(cycle)
    assert caught.value.reason is R.TOO_DEEP


def test_encode_depth_limit_matches_the_decoder_default() -> None:
    value: CborValue = 0
    for _ in range(DEFAULT_LIMITS.max_depth):
        value = [value]
    assert decode(encode(value)) == value
    assert encode([value], max_depth=DEFAULT_LIMITS.max_depth + 1)


def test_every_reason_has_a_test_that_produces_it() -> None:
    covered = {reason for reason, _ in DECODE_REFUSALS} | {
        R.TOO_LARGE, R.TOO_DEEP, R.TOO_MANY_ITEMS, R.UNSUPPORTED_TYPE, R.INTEGER_OUT_OF_RANGE,
        R.DUPLICATE_KEY, R.FORBIDDEN_KEY_TYPE, R.FLOAT_NOT_ALLOWED, R.INVALID_UTF8,
    }
    assert covered == set(CodecErrorReason)


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"max_items": -1}, {"max_depth": -1},
                                    {"max_depth": 10_000}])
def test_decode_limits_refuse_nonsense_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="DecodeLimits"):
        DecodeLimits(**kwargs)
