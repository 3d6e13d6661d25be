"""Evicted transactions are dead-lettered (reason ``evicted``) before the batch that evicted
them commits its offsets, and ``manage.py dlq redrive`` brings them back: against the real
broker and PostgreSQL."""

from __future__ import annotations

import json
import time
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY

from apps.ingest.dlq import DeadLetter, read_dead_letters
from apps.ingest.runner import build_worker
from apps.ingest.worker import TransientIngestError
from apps.mempool.admission import reset_default_pipeline
from apps.mempool.models import MempoolTransaction, PendingDeadLetter
from apps.mempool.services import remove_committed
from cybermesh.embedded_broker import EmbeddedBroker
from cybermesh.kafka_config import dlq_topic
from cybermesh.protocol.txs import Category, Entity, EntityKind, SecurityEvent, Transaction
from cybermesh.sdk import partition_key
from tests.ingest.conftest import Detector
from tests.ingest.kafka_support import run_until, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

POOL = 6


def mempool_ids() -> set[bytes]:
    return {bytes(tx_id) for tx_id in MempoolTransaction.objects.values_list("tx_id",
                                                                             flat=True)}


def severity_event(index: int, severity: int) -> SecurityEvent:
    return SecurityEvent(source="ids", offender=Entity.of(EntityKind.IP, f"10.7.{index}.1"),
                         category=Category.SCAN, severity=severity, confidence_bps=0,
                         observed_at_ms=time.time_ns() // 1_000_000 - 5000,
                         detector="rules/v1", payload_ref=f"{index:064x}")


def publish(detector: Detector, bootstrap: str, severity: int, indexes: range
            ) -> list[Transaction]:
    with detector.sdk(bootstrap) as sdk:
        return [sdk.publish(severity_event(index, severity)) for index in indexes]


def evicted_letters(topics: dict[str, str]) -> list[DeadLetter]:
    return [letter for letter in read_dead_letters([dlq_topic(topics["anomalies"])],
                                                   timeout_s=5)
            if letter.reason == "evicted"]


def dead_lettered_total(reason: str) -> float:
    return REGISTRY.get_sample_value("cybermesh_ingest_dead_lettered_total",
                                     {"reason": reason}) or 0.0


@pytest.fixture
def small_pool(node_settings: Any) -> Any:
    node_settings.MEMPOOL_MAX_TXS = POOL
    reset_default_pipeline()
    return node_settings


def test_evicted_events_go_to_the_dlq_before_the_evicting_batch_commits_and_redrive_back(
        small_pool: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    low = publish(producers["a"], bootstrap, 1, range(POOL))
    worker = build_worker(batch_size=50)
    run_until(worker, lambda w: w.stats.admitted >= POOL)
    assert mempool_ids() == {t.tx_id for t in low}

    high = publish(producers["b"], bootstrap, 9, range(100, 103))
    # The first attempt to dead-letter the evictions fails (the DLQ did not acknowledge):
    # the batch must not be committed, and must be retried until the letters are in.
    real_drain = worker.drain_removals
    attempts: list[dict[str, int]] = []

    def flaky_drain(**options: Any) -> int:
        attempts.append({"pending": PendingDeadLetter.objects.count(),
                         "admitted": worker.stats.admitted})
        if len(attempts) == 1:
            raise TransientIngestError("the DLQ did not acknowledge")
        return real_drain(**options)

    worker.drain_removals = flaky_drain  # type: ignore[method-assign]
    before = dead_lettered_total("evicted")
    run_until(worker, lambda w: w.stats.messages >= POOL + len(high))
    worker.drain_removals = real_drain  # type: ignore[method-assign]
    # Evicted, kept, not yet counted. The first batch holds one to three of the new events
    # (the worker takes what has arrived once the first message is in), each evicting one.
    first = attempts[0]
    assert first["admitted"] == POOL and 1 <= first["pending"] <= len(high), attempts
    assert worker.stats.transient_retries >= 1
    # The retried batch's events were durable since the first attempt, "duplicate" the
    # second time: nothing admitted twice.
    assert worker.stats.duplicates == first["pending"]

    victims = {t.tx_id for t in low} - mempool_ids()
    assert len(victims) == len(high) and {t.tx_id for t in high} <= mempool_ids()
    # Drained by the retry, though the retried admission evicted nothing itself.
    assert not PendingDeadLetter.objects.exists()
    letters = evicted_letters(topics)
    by_tx = {bytes.fromhex(letter.headers["dlq-tx-id"]): letter for letter in letters}
    assert set(by_tx) == victims and len(letters) == len(victims)
    low_by_id = {t.tx_id: t for t in low}
    for tx_id, letter in by_tx.items():
        assert letter.value == low_by_id[tx_id].wire  # the admitted bytes, unchanged
        assert letter.key == partition_key(low_by_id[tx_id])
        assert letter.retryable
        assert letter.source_topic == topics["anomalies"]
        assert letter.headers["dlq-node-id"] == small_pool.NODE_ID
        assert letter.headers["tx-id"] == tx_id.hex()
        assert "evicted from the full mempool" in letter.headers["dlq-detail"]
    assert dead_lettered_total("evicted") == before + len(victims)
    assert worker.stats.by_reason == {"evicted": len(victims)}

    # A block commits the pool; the operator re-drives the evicted events: admitted again.
    remove_committed(mempool_ids())
    output = StringIO()
    call_command("dlq", "redrive", "--reason", "evicted", "--json", "--timeout", "3",
                 stdout=output)
    assert json.loads(output.getvalue()) == {"redriven": len(victims)}
    run_until(worker, lambda w: victims <= mempool_ids())
    worker.close()
    assert mempool_ids() == victims


def test_a_pending_dead_letter_left_by_a_crash_is_sent_at_start_up(
        small_pool: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    """What a process killed between the eviction's commit and the DLQ ack leaves behind: a
    pending row and no dead letter. The next worker publishes it before anything else, even
    with nothing to consume; one admitted through the API goes to its kind's topic."""
    from apps.mempool.admission import default_pipeline

    pipeline = default_pipeline()
    now_ms = time.time_ns() // 1_000_000
    with producers["a"].sdk(kafka_broker.bootstrap_servers) as sdk:
        low = [sdk.sign(severity_event(index, 1)) for index in range(POOL)]
        high = sdk.sign(severity_event(50, 9))
    pipeline.admit_batch([t.wire for t in low], now_ms=now_ms, source="api")
    [evicted] = pipeline.admit(high.wire, now_ms=now_ms, source="api").evicted
    assert PendingDeadLetter.objects.count() == 1
    worker = build_worker().start()
    wait_for(lambda: worker.step() == 0 and not PendingDeadLetter.objects.exists(),
             timeout_s=30, message="the start-up drain")
    worker.close()
    [letter] = evicted_letters(topics)
    assert bytes.fromhex(letter.headers["dlq-tx-id"]) == evicted
    assert letter.source_topic == topics["anomalies"]  # security events' topic
    assert worker.stats.removals_dead_lettered == 1
