"""Domain-separated Ed25519 signing: keys, domains, verify, verify_batch."""

from __future__ import annotations

import hashlib
import pickle

import nacl.bindings as sodium
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.crypto.signing import (
    SIGNATURE_LENGTH,
    CryptoError,
    CryptoErrorReason,
    Domain,
    PublicKey,
    SigningKey,
    ed25519_verify,
    require_signature,
    verify_batch,
)

pytestmark = pytest.mark.unit

R = CryptoErrorReason
SEED = bytes(range(32))
VOTE = Domain(kind="vote", chain_id="cybermesh-test", version=1)


def test_domain_tag_is_length_prefixed_framing_under_the_cybermesh_magic() -> None:
    assert VOTE.tag() == (b"cybermesh/v1" + b"\x00\x04vote" + b"\x00\x0ecybermesh-test"
                          + b"\x00\x00\x00\x01")


def test_domain_tags_cannot_be_confused_by_moving_bytes_between_fields() -> None:
    # Without length prefixes ("ab", "c") and ("a", "bc") would frame alike.
    assert Domain("ab", "c", 1).tag() != Domain("a", "bc", 1).tag()
    assert Domain("ab", "c", 1) != Domain("a", "bc", 1)


def test_signature_is_ed25519_over_domain_tag_then_message_as_an_independent_library_sees_it(
) -> None:
    key = SigningKey.from_seed(SEED)
    message = b"block-hash-and-view"
    signature = key.sign(VOTE, message)
    independent = Ed25519PrivateKey.from_private_bytes(SEED).sign(VOTE.tag() + message)
    assert signature == independent
    assert len(signature) == SIGNATURE_LENGTH
    assert key.public_key.verify(VOTE, message, signature)


@pytest.mark.parametrize("other", [
    Domain(kind="proposal", chain_id="cybermesh-test", version=1),
    Domain(kind="vote", chain_id="cybermesh-main", version=1),
    Domain(kind="vote", chain_id="cybermesh-test", version=2),
])
def test_signature_for_one_domain_never_verifies_under_another(other: Domain) -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(VOTE, b"message")
    assert key.public_key.verify(VOTE, b"message", signature)
    assert not key.public_key.verify(other, b"message", signature)


_domain_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=12)
domains = st.builds(Domain, kind=_domain_text, chain_id=_domain_text,
                    version=st.integers(0, 2**32 - 1))


@given(domains, domains, st.binary(max_size=40))
@settings(max_examples=200)
def test_signature_verifies_under_exactly_its_own_domain(
    domain: Domain, other: Domain, message: bytes
) -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(domain, message)
    assert key.public_key.verify(domain, message, signature)
    assert key.public_key.verify(other, message, signature) is (other == domain)
    assert (other.tag() == domain.tag()) is (other == domain)


def test_verify_returns_false_for_any_bad_signature_and_never_raises() -> None:
    key = SigningKey.from_seed(SEED)
    public = key.public_key
    signature = key.sign(VOTE, b"m")
    for bad in (b"", signature[:63], signature + b"\x00", bytes(64),
                bytes([signature[0] ^ 0x80]) + signature[1:], bytearray(signature),
                "00" * 64, None):
        assert public.verify(VOTE, b"m", bad) is False  # type: ignore[arg-type]
    assert public.verify(VOTE, b"other", signature) is False
    assert not ed25519_verify(b"short", b"m", signature)


def test_verify_batch_reports_exactly_the_failed_indexes() -> None:
    keys = [SigningKey.from_seed(bytes([i]) * 32) for i in range(6)]
    items = [(k.public_key, VOTE, f"m{i}".encode(), k.sign(VOTE, f"m{i}".encode()))
             for i, k in enumerate(keys)]
    assert verify_batch(items) == []
    items[1] = (items[1][0], VOTE, b"tampered", items[1][3])
    items[3] = (keys[4].public_key, *items[3][1:])  # signed by another key
    items[4] = (items[4][0], Domain("vote", "other-chain", 1), *items[4][2:])
    items[5] = (items[5][0], VOTE, items[5][2], items[5][3][:10])
    assert verify_batch(items) == [1, 3, 4, 5]
    assert verify_batch([]) == []


def test_verify_batch_agrees_with_single_verification() -> None:
    key = SigningKey.from_seed(SEED)
    signatures = [key.sign(VOTE, bytes([i])) for i in range(8)]
    items = [(key.public_key, VOTE, bytes([i % 5]), signatures[i]) for i in range(8)]
    singles = [i for i, (pk, d, m, s) in enumerate(items) if not pk.verify(d, m, s)]
    assert verify_batch(items) == singles == [5, 6, 7]


def test_key_id_is_the_first_16_hex_digits_of_sha256_of_the_public_key() -> None:
    key = SigningKey.from_seed(SEED)
    expected = hashlib.sha256(key.public_key.raw).hexdigest()[:16]
    assert key.key_id == key.public_key.key_id == expected
    assert PublicKey.from_bytes(key.public_key.raw).key_id == expected
    assert PublicKey.from_bytes(key.public_key.raw) == key.public_key


def test_signing_key_never_shows_its_seed() -> None:
    key = SigningKey.from_seed(SEED)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert SEED.hex() not in text
        assert repr(SEED) not in text
        assert key.key_id in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert not hasattr(key, "__dict__")


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "x" * 32])
def test_signing_key_refuses_a_seed_that_is_not_32_bytes(seed: object) -> None:
    with pytest.raises(CryptoError) as caught:
        SigningKey.from_seed(seed)  # type: ignore[arg-type]
    assert caught.value.reason is R.BAD_SEED_LENGTH


IDENTITY = bytes.fromhex("0100000000000000000000000000000000000000000000000000000000000000")
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
# y = p + 1 (non-canonical encoding of the identity's y) and y = 2**255 - 1.
NON_CANONICAL_IDENTITY = bytes.fromhex(
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
ALL_ONES = bytes.fromhex("ff" * 31 + "7f")


@pytest.mark.parametrize(("raw", "reason"), [
    (bytes(31), R.BAD_KEY_LENGTH),
    (bytes(33), R.BAD_KEY_LENGTH),
    (bytearray(32), R.BAD_KEY_LENGTH),
    (IDENTITY, R.SMALL_ORDER_KEY),
    (IDENTITY[:31] + b"\x80", R.SMALL_ORDER_KEY),  # identity with the sign bit: x = -0
    (bytes(32), R.SMALL_ORDER_KEY),  # order 4
    (ORDER_8, R.SMALL_ORDER_KEY),
    (ORDER_8[:31] + bytes([ORDER_8[31] | 0x80]), R.SMALL_ORDER_KEY),
    (NON_CANONICAL_IDENTITY, R.NON_CANONICAL_KEY),
    (ALL_ONES, R.NON_CANONICAL_KEY),
    (bytes.fromhex("02" + "00" * 31), R.BAD_KEY),  # y = 2 is not on the curve
])
def test_public_key_refuses_bad_small_order_and_non_canonical_keys(
    raw: bytes, reason: CryptoErrorReason
) -> None:
    with pytest.raises(CryptoError) as caught:
        PublicKey.from_bytes(raw)
    assert caught.value.reason is reason


def test_public_key_refuses_an_honest_key_plus_a_torsion_point_as_mixed_order() -> None:
    honest = SigningKey.from_seed(SEED).public_key.raw
    mixed = sodium.crypto_core_ed25519_add(honest, ORDER_8)
    with pytest.raises(CryptoError) as caught:
        PublicKey.from_bytes(mixed)
    assert caught.value.reason is R.MIXED_ORDER_KEY
    assert PublicKey.from_bytes(honest).raw == honest


@pytest.mark.parametrize(("kind", "chain_id", "version"), [
    ("", "c", 1), ("k", "", 1), ("k", "c", -1), ("k", "c", 2**32), ("k", "c", True),
    ("k" * 256, "c", 1), ("\ud800", "c", 1), (b"k", "c", 1),
])
def test_domain_refuses_empty_oversized_or_mistyped_fields(
    kind: object, chain_id: object, version: object
) -> None:
    with pytest.raises(CryptoError) as caught:
        Domain(kind, chain_id, version)  # type: ignore[arg-type]
    assert caught.value.reason is R.BAD_DOMAIN


def test_require_signature_refuses_wrong_shapes() -> None:
    assert require_signature(bytes(64)) == bytes(64)
    for bad in (bytes(63), bytes(65), bytearray(64), None):
        with pytest.raises(CryptoError) as caught:
            require_signature(bad)
        assert caught.value.reason is R.BAD_SIGNATURE_LENGTH
