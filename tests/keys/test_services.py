"""seal_payload / open_payload: round trip, fresh nonces, input bounds, and tamper detection
(ciphertext, nonce, key id, purpose, context, ciphertext moved to another row)."""

from __future__ import annotations

import uuid

import pytest

from apps.keys.errors import SealedPayloadError, SealedPayloadProblem
from apps.keys.models import SealedPayload
from apps.keys.services import MAX_PLAINTEXT_BYTES, open_payload, seal_payload
from tests.keys.conftest import AtRestKeys

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

SECRET = b"producer sasl password: hunter2-for-real"


def _reload(row: SealedPayload) -> SealedPayload:
    return SealedPayload.objects.get(id=row.id)


def _refused(row: SealedPayload, problem: SealedPayloadProblem, *, purpose: str | None = None,
             context: str | None = None) -> str:
    with pytest.raises(SealedPayloadError) as caught:
        open_payload(_reload(row), purpose=purpose, context=context)
    assert caught.value.problem is problem
    return str(caught.value)


def test_a_sealed_payload_opens_to_its_plaintext_after_a_trip_through_the_database(
        at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="producer-credential", plaintext=SECRET, context="producer:ai-1")
    stored = _reload(row)
    assert stored.key_id == "k1"
    assert len(bytes(stored.nonce)) == 12
    assert SECRET not in bytes(stored.ciphertext)
    assert len(bytes(stored.ciphertext)) == len(SECRET) + 16
    assert stored.resealed_at is None
    assert open_payload(stored, purpose="producer-credential", context="producer:ai-1") == SECRET


def test_empty_plaintext_round_trips(at_rest_keys: AtRestKeys) -> None:
    assert open_payload(_reload(seal_payload(purpose="p", plaintext=b""))) == b""


def test_every_seal_uses_a_fresh_nonce(at_rest_keys: AtRestKeys) -> None:
    rows = [seal_payload(purpose="p", plaintext=SECRET) for _ in range(200)]
    assert len({bytes(row.nonce) for row in rows}) == 200
    assert len({bytes(row.ciphertext) for row in rows}) == 200


@pytest.mark.parametrize(("arguments", "fragment"), [
    ({"purpose": "Producer Credential"}, "purpose must match"),
    ({"purpose": ""}, "purpose must match"),
    ({"purpose": "x" * 65}, "purpose must match"),
    ({"context": "c" * 256}, "context must be text of at most 255"),
    ({"context": "a\x00b"}, "without NUL"),
    ({"plaintext": "text, not bytes"}, "plaintext must be bytes"),
    ({"plaintext": b"x" * (MAX_PLAINTEXT_BYTES + 1)}, "at most 1048576 bytes"),
])
def test_bad_input_is_refused_and_writes_nothing(at_rest_keys: AtRestKeys,
                                                 arguments: dict[str, object],
                                                 fragment: str) -> None:
    call = {"purpose": "p", "plaintext": SECRET, "context": "", **arguments}
    with pytest.raises(SealedPayloadError, match=fragment) as caught:
        seal_payload(**call)  # type: ignore[arg-type]
    assert caught.value.problem is SealedPayloadProblem.INVALID_INPUT
    assert not SealedPayload.objects.exists()


def test_the_largest_allowed_plaintext_is_accepted(at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=b"x" * MAX_PLAINTEXT_BYTES)
    assert len(open_payload(_reload(row))) == MAX_PLAINTEXT_BYTES


def test_a_flipped_ciphertext_bit_fails_authentication_and_names_the_row(
        at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=SECRET)
    tampered = bytearray(bytes(row.ciphertext))
    tampered[3] ^= 0x01
    SealedPayload.objects.filter(id=row.id).update(ciphertext=bytes(tampered))
    message = _refused(row, SealedPayloadProblem.AUTHENTICATION_FAILED)
    assert str(row.id) in message and "'k1'" in message


def test_a_truncated_ciphertext_fails_authentication(at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=SECRET)
    SealedPayload.objects.filter(id=row.id).update(ciphertext=bytes(row.ciphertext)[:10])
    _refused(row, SealedPayloadProblem.AUTHENTICATION_FAILED)


def test_a_changed_nonce_fails_authentication(at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=SECRET)
    nonce = bytearray(bytes(row.nonce))
    nonce[0] ^= 0x80
    SealedPayload.objects.filter(id=row.id).update(nonce=bytes(nonce))
    _refused(row, SealedPayloadProblem.AUTHENTICATION_FAILED)


def test_a_nonce_of_the_wrong_length_is_refused_as_malformed(at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=SECRET)
    SealedPayload.objects.filter(id=row.id).update(nonce=bytes(row.nonce)[:8])
    assert "bad_nonce_length" in _refused(row, SealedPayloadProblem.MALFORMED)


def test_a_key_id_changed_to_another_known_key_fails_authentication(
        at_rest_keys: AtRestKeys) -> None:
    at_rest_keys.use("k1", "k2")
    row = seal_payload(purpose="p", plaintext=SECRET)
    SealedPayload.objects.filter(id=row.id).update(key_id="k2")
    _refused(row, SealedPayloadProblem.AUTHENTICATION_FAILED)


def test_a_key_id_the_keyring_lacks_is_named_with_the_row(at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="p", plaintext=SECRET)
    SealedPayload.objects.filter(id=row.id).update(key_id="retired-2023")
    message = _refused(row, SealedPayloadProblem.UNKNOWN_KEY_ID)
    assert message == (f"sealed payload {row.id} (purpose 'p') is sealed under key id "
                       "'retired-2023', which is not in the at-rest keyring (k1)")


def test_ciphertext_moved_to_another_row_does_not_open(at_rest_keys: AtRestKeys) -> None:
    victim = seal_payload(purpose="p", plaintext=SECRET, context="producer:ai-1")
    decoy = seal_payload(purpose="p", plaintext=b"harmless", context="producer:ai-1")
    SealedPayload.objects.filter(id=decoy.id).update(
        key_id=victim.key_id, nonce=bytes(victim.nonce), ciphertext=bytes(victim.ciphertext))
    _refused(decoy, SealedPayloadProblem.AUTHENTICATION_FAILED)
    assert open_payload(_reload(victim)) == SECRET


def test_a_whole_row_copied_under_a_new_id_does_not_open(at_rest_keys: AtRestKeys) -> None:
    victim = _reload(seal_payload(purpose="p", plaintext=SECRET))
    copy = SealedPayload.objects.create(
        id=uuid.uuid4(), purpose=victim.purpose, context=victim.context, key_id=victim.key_id,
        nonce=bytes(victim.nonce), ciphertext=bytes(victim.ciphertext),
        created_at=victim.created_at)
    _refused(copy, SealedPayloadProblem.AUTHENTICATION_FAILED)


@pytest.mark.parametrize(("column", "value"), [("purpose", "api-token"),
                                               ("context", "producer:evil")])
def test_a_relabelled_purpose_or_context_fails_authentication(
        at_rest_keys: AtRestKeys, column: str, value: str) -> None:
    row = seal_payload(purpose="producer-credential", plaintext=SECRET, context="producer:ai-1")
    SealedPayload.objects.filter(id=row.id).update(**{column: value})
    _refused(row, SealedPayloadProblem.AUTHENTICATION_FAILED)


def test_a_row_of_another_purpose_or_context_is_refused_before_decryption(
        at_rest_keys: AtRestKeys) -> None:
    row = seal_payload(purpose="api-token", plaintext=SECRET, context="user:1")
    assert "expected 'producer-credential'" in _refused(
        row, SealedPayloadProblem.PURPOSE_MISMATCH, purpose="producer-credential")
    _refused(row, SealedPayloadProblem.CONTEXT_MISMATCH, purpose="api-token", context="user:2")


def test_unusable_key_files_are_reported_in_one_line_naming_the_file(
        at_rest_keys: AtRestKeys, settings: object) -> None:
    at_rest_keys.path("k1").chmod(0o644)
    with pytest.raises(SealedPayloadError) as caught:
        seal_payload(purpose="p", plaintext=SECRET)
    assert caught.value.problem is SealedPayloadProblem.KEYS_UNAVAILABLE
    assert str(at_rest_keys.path("k1")) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not SealedPayload.objects.exists()
