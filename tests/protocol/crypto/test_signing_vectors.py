"""Ed25519 against public vectors: RFC 8032, Wycheproof and CCTV (libsodium's exact set)."""

from __future__ import annotations

from typing import Any

import nacl.signing
import pytest
from crypto_vectors import load_vectors
from nacl.exceptions import BadSignatureError

from cybermesh.protocol.crypto.signing import (
    CryptoError,
    CryptoErrorReason,
    PublicKey,
    SigningKey,
    ed25519_sign,
    ed25519_verify,
)

pytestmark = pytest.mark.unit

R = CryptoErrorReason

RFC8032: list[dict[str, str]] = load_vectors("rfc8032_ed25519.json")["vectors"]  # type: ignore[index]
WYCHEPROOF: dict[str, Any] = load_vectors("wycheproof_ed25519_test.json")  # type: ignore[assignment]
CCTV: list[dict[str, Any]] = load_vectors("cctv_ed25519vectors.json")  # type: ignore[assignment]


@pytest.mark.parametrize("vector", RFC8032, ids=[v["name"] for v in RFC8032])
def test_rfc8032_key_derivation_and_signature_match_byte_for_byte(vector: dict[str, str]) -> None:
    seed = bytes.fromhex(vector["secret_key"])
    message = bytes.fromhex(vector["message"])
    signature = bytes.fromhex(vector["signature"])
    key = SigningKey.from_seed(seed)
    assert key.public_key.raw.hex() == vector["public_key"]
    assert key.seed == seed
    assert ed25519_sign(seed + key.public_key.raw, message) == signature
    assert ed25519_verify(key.public_key.raw, message, signature)
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    assert not ed25519_verify(key.public_key.raw, message, tampered)
    assert not ed25519_verify(key.public_key.raw, message + b"\x00", signature)


def test_rfc8032_vector_set_is_the_five_named_tests() -> None:
    assert [v["name"] for v in RFC8032] == ["TEST 1", "TEST 2", "TEST 3", "TEST 1024",
                                            "TEST SHA(abc)"]


def _wycheproof_cases() -> list[tuple[str, str, str, str, str]]:
    cases = []
    for group in WYCHEPROOF["testGroups"]:
        for test in group["tests"]:
            cases.append((f"tc{test['tcId']}", group["publicKey"]["pk"], test["msg"],
                          test["sig"], test["result"]))
    return cases


WYCHEPROOF_CASES = _wycheproof_cases()


@pytest.mark.parametrize(("tc_id", "public_key", "message", "signature", "result"),
                         WYCHEPROOF_CASES, ids=[c[0] for c in WYCHEPROOF_CASES])
def test_wycheproof_valid_signatures_verify_and_invalid_ones_are_rejected(
    tc_id: str, public_key: str, message: str, signature: str, result: str
) -> None:
    raw_key = bytes.fromhex(public_key)
    PublicKey.from_bytes(raw_key)  # every Wycheproof key is an honest key
    accepted = ed25519_verify(raw_key, bytes.fromhex(message), bytes.fromhex(signature))
    assert accepted is (result == "valid"), tc_id


def test_wycheproof_set_has_both_outcomes() -> None:
    results = {case[4] for case in WYCHEPROOF_CASES}
    assert results == {"valid", "invalid"}
    assert len(WYCHEPROOF_CASES) == WYCHEPROOF["numberOfTests"]


def _pynacl_accepts(raw_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(raw_key).verify(message, signature)
    except BadSignatureError:
        return False
    return True


# libsodium's accept set, as measured and recorded in shared/vectors/README.md: the valid
# vector plus the 42 flagged only low_order_component_A or low_order_component_A+R.
ACCEPTED_FLAG_SETS = {frozenset(), frozenset({"low_order_component_A"}),
                      frozenset({"low_order_component_A", "low_order_component_R"})}
REFUSING_FLAGS = {"low_order_A", "low_order_R", "non_canonical_A", "non_canonical_R",
                  "low_order_residue"}


def test_cctv_primitive_accepts_exactly_pynacls_set_and_the_recorded_43() -> None:
    accepted_numbers = []
    for vector in CCTV:
        raw_key, signature = bytes.fromhex(vector["key"]), bytes.fromhex(vector["sig"])
        message = vector["msg"].encode()
        flags = frozenset(vector["flags"] or ())
        ours = ed25519_verify(raw_key, message, signature)
        assert ours is _pynacl_accepts(raw_key, message, signature), vector["number"]
        if flags & REFUSING_FLAGS:
            assert not ours, vector["number"]
        if ours:
            assert flags in ACCEPTED_FLAG_SETS, vector["number"]
            accepted_numbers.append(vector["number"])
    assert len(accepted_numbers) == 43


def test_cctv_keys_are_refused_at_registration_unless_in_the_prime_order_subgroup() -> None:
    """Through PublicKey, only keys without a torsion component exist at all; of the CCTV set
    that leaves exactly one vector that verifies: the valid one."""
    reasons: dict[str, int] = {}
    verified = []
    for vector in CCTV:
        raw_key = bytes.fromhex(vector["key"])
        flags = set(vector["flags"] or ())
        try:
            PublicKey.from_bytes(raw_key)
        except CryptoError as error:
            reasons[error.reason.name] = reasons.get(error.reason.name, 0) + 1
            if "non_canonical_A" in flags and error.reason is not R.NON_CANONICAL_KEY:
                # a non-canonical encoding of a small-order point is refused as small order
                assert error.reason is R.SMALL_ORDER_KEY, vector["number"]
            elif "low_order_A" in flags:
                assert error.reason in (R.SMALL_ORDER_KEY, R.NON_CANONICAL_KEY), vector["number"]
            else:
                assert "low_order_component_A" in flags, vector["number"]
                assert error.reason is R.MIXED_ORDER_KEY, vector["number"]
            continue
        assert not flags & {"low_order_A", "non_canonical_A", "low_order_component_A"}
        if ed25519_verify(raw_key, vector["msg"].encode(), bytes.fromhex(vector["sig"])):
            verified.append(vector["number"])
    assert verified == [next(v["number"] for v in CCTV if not v["flags"])]
    assert set(reasons) == {"SMALL_ORDER_KEY", "NON_CANONICAL_KEY", "MIXED_ORDER_KEY"}
