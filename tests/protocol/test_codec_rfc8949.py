"""RFC 8949 Appendix A examples against the canonical codec.

Every example that is already a core deterministic encoding must decode to its value and
re-encode to exactly the same bytes. Every other example (floats, tags, bignums, undefined,
other simple values, indefinite lengths) must be refused with the precise reason. Each valid
example's value is cross-checked with cbor2 so a transcription error in this table shows up.
"""

from __future__ import annotations

import cbor2
import pytest

from cybermesh.protocol.codec import CodecError, CodecErrorReason, decode, encode

pytestmark = pytest.mark.unit

R = CodecErrorReason

# (diagnostic notation, hex) — valid deterministic encodings from RFC 8949 Appendix A.
VALID = [
    (0, "00"),
    (1, "01"),
    (10, "0a"),
    (23, "17"),
    (24, "1818"),
    (25, "1819"),
    (100, "1864"),
    (1000, "1903e8"),
    (1000000, "1a000f4240"),
    (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"),
    (-18446744073709551616, "3bffffffffffffffff"),
    (-1, "20"),
    (-10, "29"),
    (-100, "3863"),
    (-1000, "3903e7"),
    (False, "f4"),
    (True, "f5"),
    (None, "f6"),
    (b"", "40"),
    (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"),
    ("a", "6161"),
    ("IETF", "6449455446"),
    ('"\\', "62225c"),
    ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"),
    ("\U00010151", "64f0908591"),
    ([], "80"),
    ([1, 2, 3], "83010203"),
    ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"),
    ({1: 2, 3: 4}, "a201020304"),
    ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"},
     "a56161614161626142616361436164614461656145"),
]

# (hex, reason, offset of the refused item) — the Appendix A examples that are not canonical.
REFUSED = [
    # bignums (tags 2 and 3)
    ("c249010000000000000000", R.FORBIDDEN_TAG, 0),
    ("c349010000000000000000", R.FORBIDDEN_TAG, 0),
    # floats of every width, including the ones equal to integers
    ("f90000", R.FLOAT_NOT_ALLOWED, 0),
    ("f98000", R.FLOAT_NOT_ALLOWED, 0),
    ("f93c00", R.FLOAT_NOT_ALLOWED, 0),
    ("fb3ff199999999999a", R.FLOAT_NOT_ALLOWED, 0),
    ("f93e00", R.FLOAT_NOT_ALLOWED, 0),
    ("f97bff", R.FLOAT_NOT_ALLOWED, 0),
    ("fa47c35000", R.FLOAT_NOT_ALLOWED, 0),
    ("fa7f7fffff", R.FLOAT_NOT_ALLOWED, 0),
    ("fb7e37e43c8800759c", R.FLOAT_NOT_ALLOWED, 0),
    ("f90001", R.FLOAT_NOT_ALLOWED, 0),
    ("f90400", R.FLOAT_NOT_ALLOWED, 0),
    ("f9c400", R.FLOAT_NOT_ALLOWED, 0),
    ("fbc010666666666666", R.FLOAT_NOT_ALLOWED, 0),
    ("f97c00", R.FLOAT_NOT_ALLOWED, 0),
    ("f97e00", R.FLOAT_NOT_ALLOWED, 0),
    ("f9fc00", R.FLOAT_NOT_ALLOWED, 0),
    ("fa7f800000", R.FLOAT_NOT_ALLOWED, 0),
    ("fa7fc00000", R.FLOAT_NOT_ALLOWED, 0),
    ("faff800000", R.FLOAT_NOT_ALLOWED, 0),
    ("fb7ff0000000000000", R.FLOAT_NOT_ALLOWED, 0),
    ("fb7ff8000000000000", R.FLOAT_NOT_ALLOWED, 0),
    ("fbfff0000000000000", R.FLOAT_NOT_ALLOWED, 0),
    # undefined and other simple values
    ("f7", R.FORBIDDEN_SIMPLE, 0),
    ("f0", R.FORBIDDEN_SIMPLE, 0),
    ("f8ff", R.FORBIDDEN_SIMPLE, 0),
    # tags
    ("c074323031332d30332d32315432303a30343a30305a", R.FORBIDDEN_TAG, 0),
    ("c11a514b67b0", R.FORBIDDEN_TAG, 0),
    ("c1fb41d452d9ec200000", R.FORBIDDEN_TAG, 0),
    ("d74401020304", R.FORBIDDEN_TAG, 0),
    ("d818456449455446", R.FORBIDDEN_TAG, 0),
    ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", R.FORBIDDEN_TAG, 0),
    # indefinite lengths, also when nested inside a definite container
    ("5f42010243030405ff", R.INDEFINITE_LENGTH, 0),
    ("7f657374726561646d696e67ff", R.INDEFINITE_LENGTH, 0),
    ("9fff", R.INDEFINITE_LENGTH, 0),
    ("9f018202039f0405ffff", R.INDEFINITE_LENGTH, 0),
    ("9f01820203820405ff", R.INDEFINITE_LENGTH, 0),
    ("83018202039f0405ff", R.INDEFINITE_LENGTH, 5),
    ("83019f0203ff820405", R.INDEFINITE_LENGTH, 2),
    ("9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff", R.INDEFINITE_LENGTH, 0),
    ("bf61610161629f0203ffff", R.INDEFINITE_LENGTH, 0),
    ("826161bf61626163ff", R.INDEFINITE_LENGTH, 3),
    ("bf6346756ef563416d7421ff", R.INDEFINITE_LENGTH, 0),
    # non-shortest forms of an Appendix A value
    ("1800", R.NON_SHORTEST_FORM, 0),
]


@pytest.mark.parametrize(("value", "hex_bytes"), VALID, ids=[h for _, h in VALID])
def test_appendix_a_deterministic_example_decodes_and_reencodes_exactly(
    value: object, hex_bytes: str
) -> None:
    raw = bytes.fromhex(hex_bytes)
    assert cbor2.loads(raw) == value  # the table itself is right
    decoded = decode(raw)
    assert decoded == value
    assert type(decoded) is type(value)
    assert encode(decoded) == raw
    assert encode(value) == raw  # type: ignore[arg-type]


@pytest.mark.parametrize(("hex_bytes", "reason", "offset"), REFUSED,
                         ids=[h[:24] for h, _, _ in REFUSED])
def test_appendix_a_non_canonical_example_is_refused_with_its_reason(
    hex_bytes: str, reason: CodecErrorReason, offset: int
) -> None:
    raw = bytes.fromhex(hex_bytes)
    cbor2.loads(raw)  # well-formed CBOR: refusing it is our canonical rule, not a parse bug
    with pytest.raises(CodecError) as caught:
        decode(raw)
    assert caught.value.reason is reason
    assert caught.value.offset == offset


def test_map_keys_sort_bytewise_not_length_first_like_rfc7049() -> None:
    # 1000 encodes as 19 03 e8 (3 bytes) and "a" as 61 61 (2 bytes): RFC 7049 canonical order
    # (cbor2 canonical=True) puts "a" first, RFC 8949 core deterministic order puts 1000 first.
    value = {"a": 1, 1000: 2}
    ours = encode(value)  # type: ignore[arg-type]
    assert ours == bytes.fromhex("a21903e8026161" "01")
    rfc7049_order = cbor2.dumps(value, canonical=True)
    assert rfc7049_order == bytes.fromhex("a2616101" "1903e802")
    with pytest.raises(CodecError) as caught:
        decode(rfc7049_order)
    assert caught.value.reason is R.UNSORTED_KEYS
    assert decode(ours) == value
