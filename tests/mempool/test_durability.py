"""Durability on real PostgreSQL: admitted means committed; a database failure raises and
changes nothing; concurrent admissions keep the cap and the counter exact."""

from __future__ import annotations

import threading

import psycopg
import pytest
from django.db import OperationalError, connection, connections
from django.db.models import QuerySet

from apps.mempool.admission import AdmissionPipeline, AdmissionStatus
from apps.mempool.models import MempoolTransaction, PoolStats, ProducerNonce, RateBucket
from apps.mempool.queries import pool_size
from tests.mempool.conftest import MakePipeline
from tests.mempool.factories import BOB, NOW, allowlist, event, producer, rejections, sample

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _fresh_connection() -> psycopg.Connection:
    """A new libpq connection to the test database, outside Django and its transactions."""
    settings = connection.settings_dict
    return psycopg.connect(dbname=settings["NAME"], user=settings["USER"] or "postgres",
                           host=settings["HOST"] or "127.0.0.1",
                           port=int(settings["PORT"] or 5432),
                           password=settings["PASSWORD"] or None, autocommit=True)


def test_an_admitted_transaction_is_committed_before_admit_returns(
        pipeline: AdmissionPipeline) -> None:
    transaction = event(1)
    result = pipeline.admit(transaction.wire, now_ms=NOW, source="test")
    assert result.admitted
    with _fresh_connection() as other:
        row = other.execute("SELECT wire, producer_id FROM mempool_transactions "
                            "WHERE tx_id = %s", (transaction.tx_id,)).fetchone()
        nonce = other.execute("SELECT tx_id FROM mempool_producer_nonces WHERE "
                              "producer_id = 'ai-1'").fetchone()
    assert row is not None and bytes(row[0]) == transaction.wire and row[1] == "ai-1"
    assert nonce is not None and bytes(nonce[0]) == transaction.tx_id


def test_the_pool_survives_a_restart(make_pipeline: MakePipeline) -> None:
    first_process = make_pipeline(max_txs=2)
    transactions = [event(nonce) for nonce in range(2)]
    first_process.admit_batch([t.wire for t in transactions], now_ms=NOW, source="test")
    connections.close_all()
    # A new process: new pipeline object, new database connection, nothing in memory.
    second_process = make_pipeline(max_txs=2)
    again = second_process.admit(transactions[0].wire, now_ms=NOW + 10, source="test")
    assert again.status is AdmissionStatus.DUPLICATE
    reused = second_process.admit(event(1, severity=9).wire, now_ms=NOW + 10, source="test")
    assert reused.reason is not None and reused.reason.value == "nonce_reused"
    # The cap counted the rows stored by the first process.
    lower = second_process.admit(event(5, severity=1).wire, now_ms=NOW + 10, source="test")
    assert lower.reason is not None and lower.reason.value == "pool_full"
    assert pool_size().tx_count == 2


def test_the_rate_limit_holds_across_a_restart(make_pipeline: MakePipeline) -> None:
    limited = allowlist(producer(rate_per_second=1, burst=1))
    make_pipeline(limited).admit(event(1).wire, now_ms=NOW, source="test")
    connections.close_all()
    result = make_pipeline(limited).admit(event(2).wire, now_ms=NOW, source="test")
    assert result.reason is not None and result.reason.value == "rate_limited"
    assert RateBucket.objects.get(producer_id="ai-1").tokens_milli == 0


def test_a_database_failure_raises_changes_nothing_and_counts_nothing(
        pipeline: AdmissionPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    transactions = [event(nonce) for nonce in range(3)]
    raws = [t.wire for t in transactions] + [b"junk"]
    real_filter = QuerySet.filter
    failures = {"left": 1}

    def failing_filter(self: QuerySet, *args: object, **kwargs: object) -> QuerySet:
        if self.model is RateBucket and failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_filter(self, *args, **kwargs)

    monkeypatch.setattr(QuerySet, "filter", failing_filter)
    admitted_before = sample("cybermesh_mempool_admitted_total", kind="security_event")
    malformed_before = rejections("malformed")
    with pytest.raises(OperationalError):
        pipeline.admit_batch(raws, now_ms=NOW, source="test")
    assert not MempoolTransaction.objects.exists()
    assert not ProducerNonce.objects.exists()
    assert sample("cybermesh_mempool_admitted_total", kind="security_event") == admitted_before
    assert rejections("malformed") == malformed_before
    # The caller retries the same batch: every transaction is admitted, none refused as reused.
    results = pipeline.admit_batch(raws, now_ms=NOW, source="test")
    assert [result.status for result in results[:3]] == [AdmissionStatus.ADMITTED] * 3
    assert rejections("malformed") == malformed_before + 1


def test_concurrent_admissions_keep_the_cap_and_the_counter_exact(
        make_pipeline: MakePipeline) -> None:
    cap = 30
    producers = allowlist(producer(), producer("ai-2", BOB))
    batches = [[event(nonce, severity=1 + nonce % 9).wire for nonce in range(0, 40)],
               [event(nonce, severity=1 + nonce % 7, producer_id="ai-2", key=BOB).wire
                for nonce in range(0, 40)]]
    errors: list[BaseException] = []
    outcomes: list[list[AdmissionStatus]] = []

    def worker(raws: list[bytes]) -> None:
        try:
            pipeline = make_pipeline(producers, max_txs=cap)
            for start in range(0, len(raws), 5):
                results = pipeline.admit_batch(raws[start:start + 5], now_ms=NOW,
                                               source="test")
                outcomes.append([result.status for result in results])
        except BaseException as error:  # noqa: BLE001 -- re-raised by the assert after join
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(raws,)) for raws in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    size = pool_size()
    assert size.tx_count == cap
    stats = PoolStats.objects.get(name="pool")
    assert (stats.tx_count, stats.total_bytes) == (size.tx_count, size.total_bytes)
    admitted = sum(status is AdmissionStatus.ADMITTED for batch in outcomes for status in batch)
    assert admitted >= cap


def test_a_lock_held_too_long_makes_admission_raise_instead_of_hang(
        make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(lock_timeout_ms=200)
    pipeline.admit(event(1).wire, now_ms=NOW, source="test")  # creates the counter row
    admitted_before = sample("cybermesh_mempool_admitted_total", kind="security_event")
    with _fresh_connection() as holder:
        holder.autocommit = False
        holder.execute("LOCK TABLE mempool_stats IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(OperationalError, match="lock timeout"):
            pipeline.admit(event(2).wire, now_ms=NOW, source="test")
        holder.rollback()
    assert sample("cybermesh_mempool_admitted_total", kind="security_event") == admitted_before
    assert pipeline.admit(event(2).wire, now_ms=NOW, source="test").admitted


def test_the_orm_path_for_databases_without_arrays_gives_the_same_answers(
        make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.mempool import store

    monkeypatch.setattr(store, "arrays_supported", lambda: False)
    pipeline = make_pipeline()
    first = [event(nonce) for nonce in range(600)]  # more than one ORM chunk
    results = pipeline.admit_batch([t.wire for t in first], now_ms=NOW, source="test")
    assert all(result.admitted for result in results)
    again = pipeline.admit_batch([first[0].wire, event(1, severity=9).wire,
                                  event(700).wire], now_ms=NOW, source="test")
    assert [result.status for result in again] == [
        AdmissionStatus.DUPLICATE, AdmissionStatus.REJECTED, AdmissionStatus.ADMITTED]
    assert again[1].reason is not None and again[1].reason.value == "nonce_reused"
    assert pool_size().tx_count == 601
    assert ProducerNonce.objects.count() == 601
