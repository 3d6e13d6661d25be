"""AES-256-GCM keyring: Wycheproof vectors, rotation, tamper and unknown-key refusals."""

from __future__ import annotations

from typing import Any

import pytest
from crypto_vectors import load_vectors

from cybermesh.protocol.codec import encode
from cybermesh.protocol.crypto.aead import Keyring, SealedBox
from cybermesh.protocol.crypto.errors import CryptoError, CryptoErrorReason

pytestmark = pytest.mark.unit

R = CryptoErrorReason
WYCHEPROOF: dict[str, Any] = load_vectors("wycheproof_aes_gcm_test.json")  # type: ignore[assignment]
KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))
NONCE = bytes(12)


def _cases(predicate: Any) -> list[dict[str, Any]]:
    return [test | {"ivSize": group["ivSize"], "keySize": group["keySize"]}
            for group in WYCHEPROOF["testGroups"] if predicate(group)
            for test in group["tests"]]


AES256_96 = _cases(lambda g: (g["keySize"], g["ivSize"], g["tagSize"]) == (256, 96, 128))
OTHER_KEY_SIZES = _cases(lambda g: g["keySize"] != 256)
OTHER_IV_SIZES = _cases(lambda g: g["keySize"] == 256 and g["ivSize"] != 96)


def test_the_vector_set_covers_valid_and_invalid_aes256_cases() -> None:
    assert {case["result"] for case in AES256_96} == {"valid", "invalid"}
    assert len(AES256_96) >= 50


@pytest.mark.parametrize("case", AES256_96, ids=[f"tc{c['tcId']}" for c in AES256_96])
def test_wycheproof_aes256_gcm_96bit_iv(case: dict[str, Any]) -> None:
    keyring = Keyring("k", {"k": bytes.fromhex(case["key"])})
    nonce, aad = bytes.fromhex(case["iv"]), bytes.fromhex(case["aad"])
    message = bytes.fromhex(case["msg"])
    sealed_bytes = bytes.fromhex(case["ct"] + case["tag"])
    box = SealedBox(key_id="k", nonce=nonce, ciphertext=sealed_bytes)
    if case["result"] == "valid":
        assert keyring.seal(message, aad, nonce).ciphertext == sealed_bytes
        assert keyring.open(box, aad) == message
    else:
        with pytest.raises(CryptoError) as caught:
            keyring.open(box, aad)
        assert caught.value.reason is R.DECRYPTION_FAILED


def test_keys_that_are_not_aes256_are_refused() -> None:
    assert OTHER_KEY_SIZES
    for case in OTHER_KEY_SIZES:
        with pytest.raises(CryptoError) as caught:
            Keyring("k", {"k": bytes.fromhex(case["key"])})
        assert caught.value.reason is R.BAD_KEY_LENGTH


def test_nonces_that_are_not_96_bits_are_refused() -> None:
    assert OTHER_IV_SIZES
    for case in OTHER_IV_SIZES:
        keyring = Keyring("k", {"k": bytes.fromhex(case["key"])})
        nonce = bytes.fromhex(case["iv"])
        for call in (lambda: keyring.seal(b"m", b"", nonce),  # noqa: B023
                     lambda: keyring.open(SealedBox("k", nonce, bytes(16)), b"")):  # noqa: B023
            with pytest.raises(CryptoError) as caught:
                call()
            assert caught.value.reason is R.BAD_NONCE_LENGTH


def test_old_keys_still_open_after_rotation_and_new_seals_use_the_current_key() -> None:
    before = Keyring("2024", {"2024": KEY_A})
    old_box = before.seal(b"secret", b"producer:ai-1", NONCE)
    after = Keyring("2025", {"2024": KEY_A, "2025": KEY_B})
    assert after.open(old_box, b"producer:ai-1") == b"secret"
    new_box = after.seal(b"secret", b"producer:ai-1", NONCE)
    assert new_box.key_id == "2025"
    assert new_box.ciphertext != old_box.ciphertext
    resealed = after.reseal(old_box, b"producer:ai-1", bytes([1]) * 12)
    assert resealed.key_id == "2025"
    assert Keyring("2025", {"2025": KEY_B}).open(resealed, b"producer:ai-1") == b"secret"


def test_a_box_sealed_under_a_retired_key_is_refused_as_unknown_key_id() -> None:
    box = Keyring("old", {"old": KEY_A}).seal(b"secret", b"", NONCE)
    with pytest.raises(CryptoError) as caught:
        Keyring("new", {"new": KEY_B}).open(box, b"")
    assert caught.value.reason is R.UNKNOWN_KEY_ID


@pytest.mark.parametrize("tamper", ["ciphertext", "tag", "nonce", "aad", "key_id", "truncate"])
def test_any_tampering_is_refused(tamper: str) -> None:
    keyring = Keyring("a", {"a": KEY_A, "b": KEY_B})
    box = keyring.seal(b"attack at dawn", b"aad", NONCE)
    aad = b"aad"
    sealed = box.ciphertext
    if tamper == "ciphertext":
        box = SealedBox(box.key_id, box.nonce, bytes([sealed[0] ^ 1]) + sealed[1:])
    elif tamper == "tag":
        box = SealedBox(box.key_id, box.nonce, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    elif tamper == "nonce":
        box = SealedBox(box.key_id, bytes([1]) + box.nonce[1:], box.ciphertext)
    elif tamper == "aad":
        aad = b"aae"
    elif tamper == "key_id":
        box = SealedBox("b", box.nonce, box.ciphertext)
    else:
        box = SealedBox(box.key_id, box.nonce, box.ciphertext[:15])
    with pytest.raises(CryptoError) as caught:
        keyring.open(box, aad)
    assert caught.value.reason is R.DECRYPTION_FAILED


def test_sealed_box_round_trips_through_canonical_bytes() -> None:
    box = Keyring("a", {"a": KEY_A}).seal(b"x", b"", NONCE)
    assert SealedBox.from_bytes(box.to_bytes()) == box
    for bad in (b"", b"\xa0", encode({"k": "a", "n": NONCE}),
                encode({"k": 1, "n": NONCE, "c": b""}), b"\xff"):
        with pytest.raises(CryptoError) as caught:
            SealedBox.from_bytes(bad)
        assert caught.value.reason is R.BAD_SEALED_BOX


def test_keyring_refuses_a_current_key_id_it_does_not_hold_and_bad_key_ids() -> None:
    with pytest.raises(CryptoError) as caught:
        Keyring("missing", {"a": KEY_A})
    assert caught.value.reason is R.UNKNOWN_KEY_ID
    for bad_id in ("", "x" * 65):
        with pytest.raises(CryptoError) as caught:
            Keyring(bad_id, {bad_id: KEY_A})
        assert caught.value.reason is R.BAD_KEY


def test_keyring_repr_names_key_ids_but_never_key_bytes() -> None:
    keyring = Keyring("a", {"a": KEY_A, "b": KEY_B})
    for text in (repr(keyring), str(keyring)):
        assert "'a'" in text and "'b'" in text
        assert KEY_A.hex() not in text and repr(KEY_A) not in text
        assert KEY_B.hex() not in text and repr(KEY_B) not in text
    assert keyring.key_ids == {"a", "b"}
    assert keyring.current_key_id == "a"
