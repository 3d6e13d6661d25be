"""The ingest worker against the real broker and PostgreSQL: produce -> mempool, DLQ reasons,
duplicates, rate limits, a full mempool, a failing database."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from django.db import connection

from apps.ingest.dlq import read_dead_letters
from apps.ingest.runner import build_worker
from apps.mempool.models import MempoolTransaction
from apps.mempool.services import remove_committed
from cybermesh.embedded_broker import EmbeddedBroker
from cybermesh.kafka_config import dlq_topic
from cybermesh.protocol.txs import Category, Entity, EntityKind, SecurityEvent, Transaction
from cybermesh.sdk import BadKind, EventProducer
from tests.ingest.conftest import Detector
from tests.ingest.kafka_support import read_topic, run_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def mempool_ids() -> set[bytes]:
    return {bytes(tx_id) for tx_id in MempoolTransaction.objects.values_list("tx_id",
                                                                             flat=True)}


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions],
                                       timeout=10)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The offset after the last record of each partition, from reading it (the test
    broker's ListOffsets under-reports the high watermark, so it is not asked)."""
    ends: dict[int, int] = {}
    for record in read_topic(bootstrap, topic, quiet_s=1.0):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


def dead_letters(topics: dict[str, str]) -> list[Any]:
    return list(read_dead_letters([dlq_topic(topics[name])
                                   for name in ("anomalies", "evidence", "policy")],
                                  timeout_s=5))


def test_signed_events_flow_from_kafka_into_the_mempool_and_offsets_follow(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    expected: set[bytes] = set()
    for name, seed in (("a", 1), ("b", 2)):
        traffic = producers[name].traffic(seed)
        with producers[name].sdk(kafka_broker.bootstrap_servers) as sdk:
            for event in traffic.stream(time.time_ns() // 1_000_000, 150):
                assert event.transaction is not None
                sdk.publish_transaction(event.transaction)
                expected.add(event.transaction.tx_id)
    worker = run_until(build_worker(batch_size=100),
                       lambda w: w.stats.admitted >= len(expected))
    worker.close()
    assert mempool_ids() == expected
    assert worker.stats.dead_lettered == worker.stats.duplicates == 0
    kinds = set(MempoolTransaction.objects.values_list("kind", flat=True))
    assert kinds == {"security_event", "evidence", "policy"}  # the realistic mix
    sources = set(MempoolTransaction.objects.values_list("source", flat=True))
    assert sources <= {f"kafka:{topics[n]}" for n in ("anomalies", "evidence", "policy")}
    group = node_settings.KAFKA_CONSUMER_GROUP
    for name in ("anomalies", "evidence", "policy"):
        ends = end_offsets(kafka_broker.bootstrap_servers, topics[name])
        committed = committed_offsets(kafka_broker.bootstrap_servers, group, topics[name])
        assert {p: committed[p] for p in ends} == ends
    assert dead_letters(topics) == []


def test_bad_events_land_in_the_dlq_with_their_reason_and_valid_neighbours_are_admitted(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    traffic = producers["a"].traffic(7)
    now_ms = time.time_ns() // 1_000_000
    valid: set[bytes] = set()
    bad: dict[BadKind, bytes] = {}
    with producers["a"].sdk(kafka_broker.bootstrap_servers) as sdk:
        topic = topics["anomalies"]
        for bad_kind in BadKind:
            for _ in range(3):
                good = traffic.valid(now_ms)
                assert good.transaction is not None
                sdk.publish_raw(good.value, topic_name=topic, key=good.key)
                valid.add(good.transaction.tx_id)
            event = traffic.bad(bad_kind, now_ms)
            # A replay reuses the nonce of the event just before it: on that event's partition,
            # so the original is certainly seen first (across partitions either could be).
            key = good.key if bad_kind is BadKind.REPLAYED else event.key
            sdk.publish_raw(event.value, topic_name=topic, key=key,
                            headers=[("trace-id", b"t-" + bad_kind.value.encode()),
                                     ("dlq-reason", b"spoofed-by-producer")])
            bad[bad_kind] = event.value
    worker = run_until(build_worker(batch_size=4),
                       lambda w: w.stats.admitted + w.stats.dead_lettered >= 20)
    worker.close()
    assert mempool_ids() == valid
    letters = {letter.value: letter for letter in dead_letters(topics)}
    assert len(letters) == len(BadKind)
    expected_reasons = {BadKind.MALFORMED: "malformed", BadKind.FORGED: "bad_signature",
                        BadKind.OVERSIZED: "too_large", BadKind.UNAUTHORIZED: "unknown_producer",
                        BadKind.REPLAYED: "nonce_reused"}
    for bad_kind, value in bad.items():
        letter = letters[value]
        assert letter.reason == expected_reasons[bad_kind], letter.summary()
        assert letter.topic == dlq_topic(topics["anomalies"])
        assert letter.source_topic == topics["anomalies"]
        assert letter.headers["dlq-retryable"] == "false"
        assert letter.headers["dlq-node-id"] == node_settings.NODE_ID
        assert letter.headers["trace-id"] == f"t-{bad_kind.value}"  # original headers kept
        assert letter.headers["dlq-detail"]
        # The producer cannot pre-empt the validator's verdict with its own dlq-* header.
        assert [v for n, v in letter.raw_headers if n == "dlq-reason"] == [
            expected_reasons[bad_kind].encode()]
    assert letters[bad[BadKind.FORGED]].headers["dlq-tx-id"]
    assert worker.stats.by_reason == dict.fromkeys(expected_reasons.values(), 1)


def test_a_redelivered_event_is_a_duplicate_not_a_dead_letter(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    with producers["b"].sdk(kafka_broker.bootstrap_servers) as sdk:
        transaction = sdk.publish(_event(1))
        sdk.publish_transaction(transaction)  # the producer retried at application level
        sdk.publish_transaction(transaction)
    worker = run_until(build_worker(), lambda w: w.stats.messages >= 3)
    worker.close()
    assert (worker.stats.admitted, worker.stats.duplicates, worker.stats.dead_lettered) == \
        (1, 2, 0)
    assert mempool_ids() == {transaction.tx_id}


def _event(index: int, *, severity: int = 5, offender: int | None = None) -> SecurityEvent:
    now_ms = time.time_ns() // 1_000_000
    host = index % 250 if offender is None else offender
    return SecurityEvent(source="ids", offender=Entity.of(EntityKind.IP, f"10.1.{host}.7"),
                         category=Category.SCAN, severity=severity, confidence_bps=9000,
                         observed_at_ms=now_ms - 5000, detector="rules/v1",
                         payload_ref=f"{index:064x}")


def test_a_flooding_producer_is_rate_limited_without_starving_the_others(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    polite: set[bytes] = set()
    flood: set[bytes] = set()
    sdks = {name: producers[name].sdk(kafka_broker.bootstrap_servers)
            for name in ("a", "b", "flood")}
    for index in range(600):
        flood.add(sdks["flood"].publish(_event(index)).tx_id)
        if index % 6 == 0:
            for name in ("a", "b"):
                polite.add(sdks[name].publish(_event(index)).tx_id)
    for sdk in sdks.values():
        sdk.flush()
    started = time.monotonic()
    worker = run_until(build_worker(batch_size=100),
                       lambda w: w.stats.messages >= len(polite) + len(flood))
    elapsed = time.monotonic() - started
    worker.close()
    admitted = mempool_ids()
    assert polite <= admitted  # nobody else waits behind the flood
    flood_admitted = admitted & flood
    # A bucket of 40 tokens refilled at 20/s: never more than that in the elapsed time.
    assert 40 <= len(flood_admitted) <= 40 + 20 * (elapsed + 1)
    letters = dead_letters(topics)
    assert len(letters) + len(flood_admitted) == len(flood)  # every flood event accounted for
    assert {letter.reason for letter in letters} == {"rate_limited"}
    assert all(letter.retryable for letter in letters)
    assert {bytes.fromhex(letter.headers["dlq-tx-id"]) for letter in letters} == \
        flood - flood_admitted


def test_a_full_mempool_pauses_consumption_and_resumes_without_losing_events(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    node_settings.MEMPOOL_MAX_TXS = 20
    from apps.mempool.admission import reset_default_pipeline

    reset_default_pipeline()
    base_ms = time.time_ns() // 1_000_000 - 1000
    published: list[Transaction] = []
    with producers["a"].sdk(kafka_broker.bootstrap_servers) as sdk:
        for index in range(50):
            # Same weight, later creation = lower priority, one offender = one partition, so
            # they are consumed in priority order: nobody evicts anybody.
            published.append(sdk.publish(_event(index, offender=1),
                                         created_at_ms=base_ms + index))
    worker = build_worker(batch_size=50)
    run_until(worker, lambda w: w.stats.pauses >= 1)
    assert len(mempool_ids()) == 20
    assert worker.stats.deferred > 0
    assert worker.stats.dead_lettered == 0
    seen: set[bytes] = set()
    while len(seen) < 50:
        held = mempool_ids()
        seen |= held
        remove_committed(held)  # as a block commit would: the pool has room again
        if len(seen) < 50:
            known = frozenset(seen)
            run_until(worker, lambda w, known=known: bool(mempool_ids() - known),
                      timeout_s=30)
    worker.close()
    assert seen == {transaction.tx_id for transaction in published}
    assert worker.stats.pauses >= 2
    assert dead_letters(topics) == []


def test_a_database_failure_is_retried_and_never_dead_lettered(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    with producers["a"].sdk(kafka_broker.bootstrap_servers) as sdk:
        published = {sdk.publish(_event(index)).tx_id for index in range(30)}
    worker = build_worker(batch_size=10).start()
    # Another session holds the pool counter locked; ours gives up waiting after 200 ms
    # (SQLSTATE 55P03, not a serialization failure): the database is "busy".
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    settings_dict = connection.settings_dict
    locked = threading.Event()
    observed: dict[str, Any] = {}

    def hold_lock_until_retried() -> None:
        with psycopg.connect(host=settings_dict["HOST"] or "127.0.0.1",
                             port=settings_dict["PORT"] or 5432,
                             user=settings_dict["USER"] or "postgres",
                             dbname=settings_dict["NAME"]) as holder:
            holder.execute("LOCK TABLE mempool_stats IN ACCESS EXCLUSIVE MODE")
            locked.set()
            deadline = time.monotonic() + 60
            while worker.stats.transient_retries < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            observed["retries_while_locked"] = worker.stats.transient_retries
            observed["admitted_while_locked"] = worker.stats.admitted
            holder.rollback()

    holder_thread = threading.Thread(target=hold_lock_until_retried, daemon=True)
    holder_thread.start()
    assert locked.wait(10)
    try:
        run_until(worker, lambda w: w.stats.admitted >= 30, timeout_s=90)
    finally:
        holder_thread.join(65)
        worker.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
    assert observed["retries_while_locked"] >= 3
    assert observed["admitted_while_locked"] == 0
    assert mempool_ids() == published
    assert worker.stats.dead_lettered == 0
    assert dead_letters(topics) == []


def test_the_producer_sdk_keys_events_by_offender_and_sets_headers(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    sdk: EventProducer = producers["a"].sdk(kafka_broker.bootstrap_servers)
    sent = [sdk.publish(_event(index % 3)) for index in range(9)]
    sdk.flush()
    records = read_topic(kafka_broker.bootstrap_servers, topics["anomalies"], expected=9)
    assert sorted(r.value for r in records) == sorted(t.wire for t in sent)
    partitions_by_key: dict[bytes | None, set[int]] = {}
    for record in records:
        partitions_by_key.setdefault(record.key, set()).add(record.partition)
        assert record.headers["content-type"] == "application/vnd.cybermesh.tx+cbor"
        assert record.headers["schema-version"] == "1"
        assert record.headers["producer-id"] == "detector-a"
        assert record.headers["tx-kind"] == "security_event"
    assert set(partitions_by_key) == {b"ip:10.1.0.7", b"ip:10.1.1.7", b"ip:10.1.2.7"}
    assert all(len(partitions) == 1 for partitions in partitions_by_key.values())
    by_value = {r.value: r for r in records}
    assert all(by_value[t.wire].headers["tx-id"] == t.tx_id.hex() for t in sent)
