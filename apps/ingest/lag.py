"""Kafka consumer lag of this node's group, per assigned topic and partition.

lag = high watermark - committed offset: how many events the brokers hold that this validator
has not yet made durable (admitted, de-duplicated or dead-lettered). A partition with nothing
committed yet counts from its low watermark (the consumer starts there, ``earliest``).

The high watermark is the larger of the brokers' answer to ListOffsets and the one the last
fetch response carried (librdkafka caches it). On Apache Kafka they agree; the embedded test
broker answers ListOffsets with the base offset of the partition's last record batch plus one,
so only the fetch response is exact there once the partition was fetched.

Refreshing costs one OffsetFetch and one ListOffsets per partition, so the worker does it at
a bounded cadence (``INGEST_LAG_INTERVAL_S``), never per poll.
"""

from __future__ import annotations

import contextlib
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from apps.ingest import metrics
from cybermesh.logging import get_logger

__all__ = ["LagMonitor"]

logger = get_logger(__name__)

Position = tuple[str, int]


class LagMonitor:
    """Refreshes ``cybermesh_ingest_consumer_lag_messages`` for a consumer's assignment."""

    def __init__(self, *, interval_s: float, timeout_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.lags: dict[Position, int] = {}
        self._due_at = 0.0

    def maybe_refresh(self, consumer: Consumer) -> None:
        """Refresh if ``interval_s`` passed since the last refresh; a broker that does not
        answer leaves the last figures (logged) and is asked again next time. The first
        request that times out ends the refresh, so an outage costs the loop at most
        ``timeout_s`` per ``interval_s``."""
        now = time.monotonic()
        if now < self._due_at:
            return
        self._due_at = now + self.interval_s
        try:
            self.refresh(consumer)
        except KafkaException as error:
            logger.warning("ingest.lag_refresh_failed", error=str(error)[:300])

    def refresh(self, consumer: Consumer) -> dict[Position, int]:
        assignment = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        committed = {(tp.topic, tp.partition): tp.offset for tp in
                     (consumer.committed(assignment, timeout=self.timeout_s)
                      if assignment else [])}
        lags: dict[Position, int] = {}
        for assigned in assignment:
            position = (assigned.topic, assigned.partition)
            partition = TopicPartition(*position)
            low, listed_high = consumer.get_watermark_offsets(partition, timeout=self.timeout_s)
            _, fetched_high = consumer.get_watermark_offsets(partition, cached=True)
            high = max(listed_high, fetched_high)
            done = max(committed.get(position, -1), low)  # negative: nothing committed
            lags[position] = max(0, high - done)
        self._publish(lags)
        return lags

    def forget(self, positions: set[Position]) -> None:
        """Stop reporting partitions this consumer no longer owns (their next owner does)."""
        self._publish({position: lag for position, lag in self.lags.items()
                       if position not in positions})

    def _publish(self, lags: dict[Position, int]) -> None:
        for topic, partition in set(self.lags) - set(lags):
            with contextlib.suppress(KeyError):  # another worker in this process removed it
                metrics.CONSUMER_LAG.remove(topic, str(partition))
        for (topic, partition), lag in lags.items():
            metrics.CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)
        self.lags = lags
