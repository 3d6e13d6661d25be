"""The consumer-lag gauge against the real broker: events published while the node's consumer
is paused show as lag per partition, and the lag drops to 0 once they are committed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from apps.ingest.runner import build_worker
from cybermesh.embedded_broker import EmbeddedBroker
from tests.ingest.conftest import Detector
from tests.ingest.kafka_support import run_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PER_PARTITION = {0: 4, 1: 7, 2: 0}


def lag_gauge(topic: str) -> dict[int, float | None]:
    return {partition: REGISTRY.get_sample_value("cybermesh_ingest_consumer_lag_messages",
                                                 {"topic": topic, "partition": str(partition)})
            for partition in PER_PARTITION}


def test_lag_counts_events_not_yet_committed_per_partition_and_drops_to_zero(
        node_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
        producers: dict[str, Detector]) -> None:
    node_settings.INGEST_LAG_INTERVAL_S = 0.2
    topic = topics["anomalies"]
    worker = build_worker(batch_size=100).start()
    run_until(worker, lambda _: len(worker.consumer.assignment()) == 9)
    run_until(worker, lambda _: lag_gauge(topic) == dict.fromkeys(PER_PARTITION, 0.0))

    # The consumer is paused (as when the mempool is full): nothing is fetched or committed.
    worker._pause(300)
    traffic = producers["a"].traffic(3)
    now_ms = time.time_ns() // 1_000_000
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                         "enable.idempotence": True, "linger.ms": 0})
    for partition, count in PER_PARTITION.items():
        for _ in range(count):
            producer.produce(topic, value=traffic.valid(now_ms).value, partition=partition)
            # One record per batch: the test broker's ListOffsets reports the last batch's
            # base offset + 1, exact only for single-record batches (see apps/ingest/lag.py).
            assert producer.flush(10) == 0
    expected = {partition: float(count) for partition, count in PER_PARTITION.items()}
    run_until(worker, lambda _: lag_gauge(topic) == expected, timeout_s=30)
    assert worker.stats.messages == 0  # really paused: the lag is the whole backlog

    worker._resume()
    total = sum(PER_PARTITION.values())
    run_until(worker, lambda _: worker.stats.admitted == total
               and lag_gauge(topic) == dict.fromkeys(PER_PARTITION, 0.0))
    worker.close()
    # The partitions are no longer this consumer's: their lag is no longer reported by it.
    assert lag_gauge(topic) == dict.fromkeys(PER_PARTITION)
