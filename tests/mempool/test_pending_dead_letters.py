"""Transactions that leave the mempool without a block (evicted, expired) are kept as pending
dead letters in the same database transaction, until the DLQ acknowledged them."""

from __future__ import annotations

import pytest
from django.db import DatabaseError

from apps.mempool import store
from apps.mempool.choices import RemovalReason
from apps.mempool.models import MempoolTransaction, PendingDeadLetter
from apps.mempool.queries import pending_dead_letter_count, pending_dead_letters
from apps.mempool.services import expire, forget_dead_letters, remove_committed
from tests.mempool.conftest import MakePipeline
from tests.mempool.factories import NOW, event

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _pool_ids() -> set[bytes]:
    return {bytes(tx_id) for tx_id in MempoolTransaction.objects.values_list("tx_id", flat=True)}


@pytest.fixture(params=["arrays", "orm"])
def sql_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both store paths: PostgreSQL arrays, and the ORM fallback the SQLite quick start uses."""
    if request.param == "orm":
        monkeypatch.setattr(store, "arrays_supported", lambda: False)
    return str(request.param)


def test_an_evicted_transaction_is_kept_with_its_wire_bytes_until_dead_lettered(
        make_pipeline: MakePipeline, sql_path: str) -> None:
    pipeline = make_pipeline(max_txs=2)
    low = [event(nonce, severity=2) for nonce in (1, 2)]
    pipeline.admit_batch([transaction.wire for transaction in low], now_ms=NOW,
                         source="kafka:ai.anomalies.v1")
    newcomer = event(3, severity=9)
    result = pipeline.admit(newcomer.wire, now_ms=NOW + 5, source="api")
    assert result.admitted and len(result.evicted) == 1
    victim = next(t for t in low if t.tx_id == result.evicted[0])
    assert victim.tx_id not in _pool_ids()
    [row] = pending_dead_letters(limit=10)
    assert (bytes(row.tx_id), bytes(row.wire), row.kind, row.source, row.reason,
            row.removed_at_ms) == (victim.tx_id, victim.wire, "security_event",
                                   "kafka:ai.anomalies.v1", RemovalReason.EVICTED, NOW + 5)
    assert newcomer.tx_id.hex() in row.detail


def test_an_eviction_that_does_not_commit_keeps_the_victim_pooled_and_records_nothing(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(max_txs=1)
    low = event(1, severity=2)
    pipeline.admit(low.wire, now_ms=NOW, source="test")

    def fail(_rows: object) -> None:
        raise DatabaseError("the database went away after the eviction")

    monkeypatch.setattr(store, "insert_nonces", fail)
    with pytest.raises(DatabaseError):
        pipeline.admit(event(2, severity=9).wire, now_ms=NOW, source="test")
    # One transaction: the eviction and its pending dead letter rolled back together.
    assert _pool_ids() == {low.tx_id}
    assert pending_dead_letter_count() == 0


def test_expired_transactions_are_kept_as_pending_dead_letters(
        make_pipeline: MakePipeline, sql_path: str) -> None:
    pipeline = make_pipeline()
    old = event(1, created_at_ms=NOW - 1000)
    new = event(2, created_at_ms=NOW)
    pipeline.admit_batch([old.wire, new.wire], now_ms=NOW, source="kafka:ai.anomalies.v1")
    expires = NOW - 1000 + pipeline.config.ttl_ms
    assert expire(expires - 1, config=pipeline.config).expired == 0
    assert pending_dead_letter_count() == 0
    assert expire(expires, config=pipeline.config).expired == 1
    [row] = pending_dead_letters(limit=10)
    assert (bytes(row.tx_id), bytes(row.wire), row.reason) == (
        old.tx_id, old.wire, RemovalReason.EXPIRED)
    assert not RemovalReason(row.reason).retryable


def test_expired_rows_purged_to_make_room_are_kept_too(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(max_txs=1, ttl_ms=400_000, replay_window_ms=300_000)
    first = event(1, severity=9)
    pipeline.admit(first.wire, now_ms=NOW, source="test")
    later = NOW + 400_000
    assert pipeline.admit(event(2, created_at_ms=later).wire, now_ms=later,
                          source="test").admitted
    assert [(bytes(row.tx_id), row.reason) for row in pending_dead_letters(limit=10)] == [
        (first.tx_id, RemovalReason.EXPIRED)]


def test_forgetting_drops_only_the_acknowledged_removal_not_a_newer_one(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(max_txs=1)
    low = event(1, severity=2)
    pipeline.admit(low.wire, now_ms=NOW, source="test")
    pipeline.admit(event(2, severity=9).wire, now_ms=NOW + 1, source="test")
    [first] = pending_dead_letters(limit=10)
    # The same transaction is admitted again (a re-drive) and evicted again before the first
    # dead letter's acknowledgement is recorded: the row now stands for the newer removal.
    remove_committed(_pool_ids())
    assert pipeline.admit(low.wire, now_ms=NOW + 2, source="test").admitted
    assert pipeline.admit(event(3, severity=9).wire, now_ms=NOW + 3,
                          source="test").evicted == (low.tx_id,)
    assert forget_dead_letters([(bytes(first.tx_id), first.removed_at_ms)]) == 0
    [newer] = pending_dead_letters(limit=10)
    assert newer.removed_at_ms == NOW + 3
    assert forget_dead_letters([(bytes(newer.tx_id), newer.removed_at_ms)]) == 1
    assert not PendingDeadLetter.objects.exists()


def test_the_admin_lists_pending_dead_letters_and_nobody_edits_them(
        make_pipeline: MakePipeline) -> None:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    pipeline = make_pipeline(max_txs=1)
    low = event(1, severity=2)
    pipeline.admit(low.wire, now_ms=NOW, source="api")
    pipeline.admit(event(2, severity=9).wire, now_ms=NOW, source="api")
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.org",
                                                                 "pw-1234567"))
    page = client.get(reverse("admin:mempool_pendingdeadletter_changelist"))
    assert page.status_code == 200
    assert low.tx_id.hex() in page.content.decode()
    assert client.get(reverse("admin:mempool_pendingdeadletter_add")).status_code == 403
