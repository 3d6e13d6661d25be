"""Kafka ingest and outbox drain rates, each against its ceiling in the same run.

Figures (issue #6):

* **ingest events/s per node**: the real :class:`apps.ingest.worker.IngestWorker` consuming a
  topic of pre-signed security events from a Kafka-protocol broker (the embedded Tansu broker,
  over TCP), admitting them through the mempool pipeline on PostgreSQL (decode, allowlist, one
  signature batch, one serializable transaction per batch) and committing offsets. Timed from
  the seek to the start of the topic to the last admission (partitions are assigned directly,
  and each repeat re-reads the topic into an empty pool). Ceiling: raw
  ``nacl.bindings.crypto_sign_open`` over the same signed bytes; target >= 70% of it.
* ``admit_batch`` alone on the same events (no Kafka), to show what the broker side costs.
* **outbox drain messages/s**: :func:`apps.notifications.outbox.drain_outbox` over committed
  outbox rows (read from PostgreSQL, published with the idempotent acks=all producer, marked
  sent after the acknowledgements). Target: >= 5,000 messages/s, a fixed number recorded as the
  ceiling of its own figure so ``meets_target`` answers it. A raw-producer figure (the same
  messages, no database) shows the broker's own ceiling.

Database: ``BENCH_DATABASE_URL`` or ``DATABASE_URL`` with ``_ingest_bench`` appended to the name;
created and dropped by this script (only the tables these paths touch, from the models).

Run: ``.venv/bin/python -m bench.bench_ingest``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import psycopg

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cybermesh"
INGEST_TARGET_RATIO = 0.70
DRAIN_TARGET_PER_SECOND = 5_000.0
EVENTS = 3000
BATCH = 500
OUTBOX_ROWS = 10_000
CHAIN = "cybermesh-bench"


def bench_database_url(url: str) -> str:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/") or "cybermesh"
    if not name.endswith("_ingest_bench"):
        name = f"{name}_ingest_bench"
    return parsed._replace(path=f"/{name}").geturl()


def _setup_django(url: str, bootstrap: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cybermesh.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from apps.ledger.models import OutboxMessage
    from apps.ledger.models import Transaction as LedgerTransaction
    from apps.mempool.models import (
        MempoolTransaction,
        PendingDeadLetter,
        PoolStats,
        ProducerNonce,
        RateBucket,
    )

    settings.KAFKA_SESSION_TIMEOUT_MS = 6000
    settings.KAFKA_MAX_POLL_INTERVAL_MS = 6000
    with connection.schema_editor() as editor:
        for model in (MempoolTransaction, ProducerNonce, RateBucket, PoolStats,
                      PendingDeadLetter, LedgerTransaction, OutboxMessage):
            editor.create_model(model)


def _interleaved(*measures: Callable[[], float]) -> list[list[float]]:
    from bench.harness import REPEATS

    for measure in measures:
        measure()
    samples: list[list[float]] = [[] for _ in measures]
    for _ in range(REPEATS):
        for index, measure in enumerate(measures):
            samples[index].append(measure())
    return samples


def _events(now_ms: int) -> tuple[list[Any], Any]:
    from apps.mempool.admission import AdmissionPipeline, MempoolConfig
    from apps.mempool.producers import Producer, ProducerAllowlist
    from cybermesh.protocol.crypto.signing import SigningKey
    from cybermesh.protocol.txs import TxKind
    from cybermesh.sdk import TrafficGenerator

    keys = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
    allowlist = ProducerAllowlist.of(
        Producer(producer_id=f"ai-{index}", keys=(key.public_key,),
                 kinds=frozenset({TxKind.SECURITY_EVENT}), rate_per_second=1_000_000,
                 burst=1_000_000, max_pending=1_000_000)
        for index, key in enumerate(keys))
    pipeline = AdmissionPipeline(MempoolConfig(chain_id=CHAIN, max_txs=1_000_000), allowlist)
    transactions = []
    for index, key in enumerate(keys):
        traffic = TrafficGenerator(key, producer_id=f"ai-{index}", chain_id=CHAIN, seed=index)
        transactions += [traffic.valid(now_ms, TxKind.SECURITY_EVENT).transaction
                         for _ in range(EVENTS // len(keys))]
    return transactions, pipeline


def _run(bootstrap: str) -> None:  # noqa: PLR0915 - one flat script of measurements
    import nacl.bindings
    from confluent_kafka import Producer, TopicPartition
    from django.db import connection
    from django.utils import timezone

    from apps.ingest.worker import IngestWorker
    from apps.ledger.models import OutboxMessage
    from apps.notifications.outbox import OutboxPublisher, drain_outbox, encode_value
    from bench.harness import Report, figure
    from cybermesh.kafka_config import consumer_config, producer_config
    from cybermesh.sdk import event_headers, partition_key
    from tests.ingest.kafka_support import create_topics

    now_ms = time.time_ns() // 1_000_000
    transactions, pipeline = _events(now_ms)
    raws = [transaction.wire for transaction in transactions]
    signed = [(transaction.signature + transaction.domain.tag() + transaction.body,
               transaction.public_key) for transaction in transactions]
    topic = f"ai.anomalies.bench{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic], partitions=3)
    producer = Producer(producer_config())
    for transaction in transactions:
        producer.produce(topic, value=transaction.wire, key=partition_key(transaction),
                         headers=event_headers(transaction))
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("events not acknowledged")

    def empty_pool() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE mempool_transactions, mempool_producer_nonces, "
                           "mempool_rate_buckets, mempool_stats")

    def raw_verify() -> float:
        start = time.perf_counter()
        for signed_message, public_key in signed:
            nacl.bindings.crypto_sign_open(signed_message, public_key)
        return len(signed) / (time.perf_counter() - start)

    # Partitions assigned directly (no group membership): the benchmark measures other
    # things between repeats, longer than a group would let a member go without polling.
    # Each repeat rewinds with seek(), and a seek waits for the fetch in flight, which an idle
    # partition's broker holds for fetch.wait.max.ms (500 ms by default): a cost of rewinding
    # (up to a third of a repeat, measured), not of ingesting, so the bench shortens it. With
    # a backlog, as here once rewound, fetches are answered at once whatever the setting.
    worker = IngestWorker(
        consumer_config=consumer_config(group_id=f"bench-{uuid.uuid4().hex[:8]}",
                                        overrides={"fetch.wait.max.ms": 10}),
        producer_config=producer_config(), topics=[topic], admit=pipeline.admit_batch,
        node_id="bench", batch_size=BATCH, poll_timeout_s=0.1,
        clock_ms=lambda: now_ms + 1000,
        assignment=[TopicPartition(topic, partition, 0) for partition in range(3)]).start()

    def ingest() -> float:
        # Every repeat re-reads the topic from the start into an empty pool.
        empty_pool()
        for partition in worker.consumer.assignment():
            worker.consumer.seek(TopicPartition(partition.topic, partition.partition, 0))
        worker.stats.admitted = 0
        started = time.perf_counter()
        deadline = time.monotonic() + 120
        while worker.stats.admitted < len(raws):
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest stalled: {worker.stats.as_dict()}")
            worker.step()
        return len(raws) / (time.perf_counter() - started)

    def admit_only() -> float:
        empty_pool()
        start = time.perf_counter()
        for offset in range(0, len(raws), BATCH):
            pipeline.admit_batch(raws[offset:offset + BATCH], now_ms=now_ms + 1000,
                                 source="bench")
        return len(raws) / (time.perf_counter() - start)

    verify, ingested, admitted = _interleaved(raw_verify, ingest, admit_only)
    worker.close()

    # --- outbox drain ---------------------------------------------------------------------
    drain_topics = [f"control.commits.bench{uuid.uuid4().hex[:8]}",
                    f"control.reputation.bench{uuid.uuid4().hex[:8]}"]
    create_topics(bootstrap, drain_topics, partitions=3)
    created = timezone.now()
    OutboxMessage.objects.bulk_create([OutboxMessage(
        dedupe_id=f"block:{index // 2}:{index % 2}", topic=drain_topics[index % 2],
        key=f"ip:10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}",
        payload={"height": index // 2, "entity": ["ip", f"10.0.{index % 256}.1"],
                 "score_bps": -index, "hash": f"{index:064x}"},
        height=index // 2, position=index % 2, created_at=created)
        for index in range(OUTBOX_ROWS)], batch_size=5000)
    publisher = OutboxPublisher()
    values = [(row.topic, row.key.encode(), encode_value(row.payload))
              for row in OutboxMessage.objects.all()]

    def drain() -> float:
        OutboxMessage.objects.update(sent_at=None)
        start = time.perf_counter()
        sent = 0
        while True:
            result = drain_outbox(publisher=publisher, batch_size=5000)
            sent += result.sent
            if result.failed:
                raise RuntimeError(f"drain failed: {result.first_error}")
            if not result.more:
                break
        if sent != OUTBOX_ROWS:
            raise RuntimeError(f"drained {sent} of {OUTBOX_ROWS}")
        return sent / (time.perf_counter() - start)

    raw_producer = Producer(producer_config(overrides={"linger.ms": 2}))

    def raw_publish() -> float:
        start = time.perf_counter()
        for name, key, value in values:
            while True:
                try:
                    raw_producer.produce(name, value=value, key=key)
                    break
                except BufferError:
                    raw_producer.poll(0.05)
        if raw_producer.flush(60):
            raise RuntimeError("raw producer: messages not acknowledged")
        return len(values) / (time.perf_counter() - start)

    drained, raw_published = _interleaved(drain, raw_publish)
    publisher.close()

    report = Report("ingest")
    ceiling = report.add(figure("raw PyNaCl crypto_sign_open (same events)", "verify/s",
                                verify))
    report.add(figure(f"ingest from Kafka ({BATCH}/batch, PostgreSQL)", "events/s", ingested,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      target_ratio=INGEST_TARGET_RATIO,
                      notes="consume + decode + allowlist + batched verify + one serializable "
                            "transaction per batch + synchronous offset commit"))
    report.add(figure("admit_batch alone (no Kafka)", "events/s", admitted,
                      ceiling_name=ceiling.name, ceiling_median=ceiling.median,
                      notes="the mempool pipeline the ingest worker calls: its ceiling"))
    report.add(figure("outbox drain vs 5k/s target", "messages/s", drained,
                      ceiling_name="absolute target (fixed, not measured)",
                      ceiling_median=DRAIN_TARGET_PER_SECOND, target_ratio=1.0,
                      notes="read unsent rows, idempotent acks=all publish, mark sent after "
                            "the acknowledgements; batches of 5000"))
    raw = report.add(figure("raw idempotent producer (same messages, no DB)", "messages/s",
                            raw_published))
    report.add(figure("outbox drain vs raw producer", "messages/s", drained,
                      ceiling_name=raw.name, ceiling_median=raw.median))
    report.write()


def main() -> None:
    from cybermesh.embedded_broker import EmbeddedBroker

    url = bench_database_url(os.environ.get("BENCH_DATABASE_URL")
                             or os.environ.get("DATABASE_URL", DEFAULT_URL))
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = psycopg.connect(dbname="postgres", user=parsed.username or "postgres",
                            password=parsed.password, host=parsed.hostname or "127.0.0.1",
                            port=parsed.port or 5432, autocommit=True)
    with admin, EmbeddedBroker() as broker:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            _setup_django(url, broker.bootstrap_servers)
            _run(broker.bootstrap_servers)
        finally:
            from django.db import connections

            connections.close_all()
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
