"""Rotation: new rows use the new key, old rows still open, reencrypt_all moves every row to the
new key (audited, in batches, resumable, compare-and-set), after which the old key can go."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.audit.models import AuditEntry
from apps.keys.errors import SealedPayloadError, SealedPayloadProblem
from apps.keys.keyring import configured_keyring
from apps.keys.models import SealedPayload
from apps.keys.services import (
    ReencryptResult,
    associated_data,
    open_payload,
    reencrypt_all,
    seal_payload,
)
from cybermesh.protocol.crypto.aead import Keyring, SealedBox
from tests.keys.conftest import AtRestKeys

pytestmark = pytest.mark.integration


def _seal(count: int, prefix: str = "old") -> dict[str, bytes]:
    """Seal ``count`` rows; return row id -> plaintext."""
    sealed = {}
    for index in range(count):
        plaintext = f"{prefix}-secret-{index}".encode()
        row = seal_payload(purpose="producer-credential", plaintext=plaintext,
                           context=f"producer:{index}")
        sealed[str(row.id)] = plaintext
    return sealed


def _key_ids() -> dict[str, str]:
    return {str(row_id): key_id
            for row_id, key_id in SealedPayload.objects.values_list("id", "key_id")}


def _all_open(expected: dict[str, bytes]) -> None:
    for row in SealedPayload.objects.all():
        assert open_payload(row) == expected[str(row.id)]


def _audit_actions() -> list[str]:
    return list(AuditEntry.objects.order_by("seq").values_list("action", flat=True))


@pytest.mark.django_db
def test_after_rotation_new_rows_use_the_new_key_and_old_rows_still_open(
        at_rest_keys: AtRestKeys) -> None:
    old = _seal(3)
    at_rest_keys.use("k2", "k1")
    new = _seal(2, prefix="new")
    assert sorted(_key_ids().values()) == ["k1", "k1", "k1", "k2", "k2"]
    _all_open(old | new)


@pytest.mark.django_db
def test_reencrypt_moves_every_row_to_the_new_key_and_then_the_old_key_can_be_dropped(
        at_rest_keys: AtRestKeys) -> None:
    sealed = _seal(7)
    at_rest_keys.use("k2", "k1")
    sealed |= _seal(2, prefix="new")
    nonces_before = dict(SealedPayload.objects.values_list("id", "nonce"))
    calls: list[tuple[int, int]] = []

    result = reencrypt_all(batch_size=3, progress=lambda done, total: calls.append((done, total)))

    assert result == ReencryptResult(current_key_id="k2", dry_run=False, stale_before={"k1": 7},
                                     examined=7, resealed=7, skipped=0, batches=3, remaining={})
    assert calls == [(3, 7), (3, 7), (1, 7)]
    assert set(_key_ids().values()) == {"k2"}
    moved = SealedPayload.objects.filter(resealed_at__isnull=False)
    assert moved.count() == 7
    assert all(bytes(row.nonce) != bytes(nonces_before[row.id]) for row in moved)
    assert _audit_actions() == ["keys.reencrypt_batch"] * 3 + ["keys.reencrypt"]
    summary = AuditEntry.objects.get(action="keys.reencrypt")
    assert summary.outcome == "success" and summary.target == "k2"
    assert summary.details["resealed"] == 7 and summary.details["remaining"] == {}

    at_rest_keys.use("k2")  # the old key file is no longer configured
    assert configured_keyring().key_ids == {"k2"}
    _all_open(sealed)


@pytest.mark.django_db
def test_without_reencrypt_dropping_the_old_key_leaves_old_rows_unopenable(
        at_rest_keys: AtRestKeys) -> None:
    _seal(1)
    at_rest_keys.use("k2")
    with pytest.raises(SealedPayloadError) as caught:
        open_payload(SealedPayload.objects.get())
    assert caught.value.problem is SealedPayloadProblem.UNKNOWN_KEY_ID


@pytest.mark.django_db
def test_a_second_run_finds_nothing_to_do_and_audits_nothing(at_rest_keys: AtRestKeys) -> None:
    _seal(2)
    at_rest_keys.use("k2", "k1")
    reencrypt_all()
    entries = AuditEntry.objects.count()
    again = reencrypt_all()
    assert (again.resealed, again.examined, again.batches, again.stale_before) == (0, 0, 0, {})
    assert AuditEntry.objects.count() == entries


@pytest.mark.django_db
def test_rows_under_a_key_id_the_keyring_lacks_stop_the_run_before_any_change(
        at_rest_keys: AtRestKeys) -> None:
    _seal(3)
    SealedPayload.objects.update(key_id="k0")
    first = str(SealedPayload.objects.order_by("id").values_list("id", flat=True)[0])
    at_rest_keys.use("k2", "k1")
    with pytest.raises(SealedPayloadError) as caught:
        reencrypt_all()
    assert caught.value.problem is SealedPayloadProblem.UNKNOWN_KEY_ID
    assert str(caught.value) == (
        f"sealed payload {first} and 2 more rows are under key id 'k0', which is not in the "
        "at-rest keyring (k1, k2); add its key file back to AT_REST_KEYS and run again")
    assert set(_key_ids().values()) == {"k0"}
    failure = AuditEntry.objects.get()
    assert (failure.action, failure.outcome, failure.target) == (
        "keys.reencrypt", "failure", first)
    assert failure.details == {"problem": "unknown_key_id", "key_id": "k0"}


@pytest.mark.django_db
def test_a_tampered_row_stops_the_run_keeps_earlier_batches_and_a_rerun_finishes(
        at_rest_keys: AtRestKeys) -> None:
    sealed = _seal(5)
    ordered = [str(row_id) for row_id in
               SealedPayload.objects.order_by("id").values_list("id", flat=True)]
    bad = ordered[3]
    SealedPayload.objects.filter(id=bad).update(context="producer:moved")
    at_rest_keys.use("k2", "k1")

    with pytest.raises(SealedPayloadError) as caught:
        reencrypt_all(batch_size=2)
    assert caught.value.problem is SealedPayloadProblem.AUTHENTICATION_FAILED
    assert str(caught.value.payload_id) == bad and bad in str(caught.value)
    key_ids = _key_ids()
    # batch 1 (rows 0, 1) committed; batch 2 (rows 2, 3) rolled back as a whole
    assert [key_ids[row_id] for row_id in ordered] == ["k2", "k2", "k1", "k1", "k1"]
    assert _audit_actions() == ["keys.reencrypt_batch", "keys.reencrypt"]
    assert AuditEntry.objects.get(action="keys.reencrypt").outcome == "failure"

    SealedPayload.objects.filter(id=bad).delete()  # the operator's decision, then resume
    result = reencrypt_all(batch_size=2)
    assert (result.stale_before, result.resealed, result.remaining) == ({"k1": 2}, 2, {})
    del sealed[bad]
    _all_open(sealed)


class _InterferingKeyring(Keyring):
    """Before sealing the first row again, another writer re-seals that row (simulated in the
    same transaction), so the compare-and-set must find it changed."""

    __slots__ = ("interfered",)

    def seal(self, plaintext: bytes, aad: bytes, nonce: bytes) -> SealedBox:
        if not getattr(self, "interfered", False):
            self.interfered = True
            row = SealedPayload.objects.order_by("id").first()
            assert row is not None
            box = super().seal(plaintext, associated_data(
                payload_id=row.id, purpose=row.purpose, context=row.context), bytes(12))
            SealedPayload.objects.filter(id=row.id).update(
                key_id=box.key_id, nonce=box.nonce, ciphertext=box.ciphertext)
        return super().seal(plaintext, aad, nonce)


@pytest.mark.django_db
def test_a_row_changed_between_read_and_write_is_skipped_not_sealed_twice(
        at_rest_keys: AtRestKeys) -> None:
    sealed = _seal(3)
    keyring = _InterferingKeyring("k2", {"k1": at_rest_keys.k1.key, "k2": at_rest_keys.k2.key})
    first = SealedPayload.objects.order_by("id").first()
    assert first is not None
    result = reencrypt_all(keyring=keyring)
    assert (result.resealed, result.skipped) == (2, 1)
    # the interfering writer's ciphertext (its all-zero nonce) is what the row holds
    assert bytes(SealedPayload.objects.get(id=first.id).nonce) == bytes(12)
    for row in SealedPayload.objects.all():
        assert open_payload(row, keyring=keyring) == sealed[str(row.id)]


@pytest.mark.django_db
def test_a_dry_run_opens_every_stale_row_and_changes_nothing(at_rest_keys: AtRestKeys) -> None:
    _seal(4)
    at_rest_keys.use("k2", "k1")
    result = reencrypt_all(dry_run=True, batch_size=3)
    assert (result.dry_run, result.examined, result.resealed, result.batches) == (True, 4, 0, 2)
    assert result.remaining == {"k1": 4}
    assert set(_key_ids().values()) == {"k1"}
    assert not AuditEntry.objects.exists()

    SealedPayload.objects.filter(id=SealedPayload.objects.order_by("id")[2].id).update(
        purpose="api-token")
    with pytest.raises(SealedPayloadError) as caught:
        reencrypt_all(dry_run=True)
    assert caught.value.problem is SealedPayloadProblem.AUTHENTICATION_FAILED


@pytest.mark.django_db
@pytest.mark.parametrize("batch_size", [0, -1, 10_001])
def test_a_batch_size_out_of_range_is_refused(at_rest_keys: AtRestKeys, batch_size: int) -> None:
    with pytest.raises(SealedPayloadError, match="batch size must be between 1 and 10000"):
        reencrypt_all(batch_size=batch_size)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_reseal_each_row_exactly_once(at_rest_keys: AtRestKeys) -> None:
    sealed = _seal(60)
    at_rest_keys.use("k2", "k1")
    results: list[ReencryptResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        try:
            barrier.wait()
            results.append(reencrypt_all(batch_size=7))
        except BaseException as error:  # noqa: BLE001 -- re-raised by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sum(result.resealed for result in results) == 60
    assert set(_key_ids().values()) == {"k2"}
    batch_entries = AuditEntry.objects.filter(action="keys.reencrypt_batch")
    assert sum(entry.details["resealed"] for entry in batch_entries) == 60
    _all_open(sealed)
