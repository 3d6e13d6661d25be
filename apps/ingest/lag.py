"""Kafka consumer lag of this node's group, per assigned topic and partition.

lag = high watermark - committed offset: how many events the brokers hold that this validator
has not yet made durable (admitted, de-duplicated or dead-lettered). A partition with nothing
committed yet counts from its low watermark (the consumer starts there, ``earliest``).

The offsets are asked with an admin client of its own, asynchronously: the worker submits the
requests (ListOffsets latest and earliest, OffsetFetch for the group) at a bounded cadence
(``INGEST_LAG_INTERVAL_S``, never per poll) and picks the answers up on a later loop turn, so
the ingest loop never waits for them. (Asked on the consumer's own connection, each answer
queued behind the broker's long-poll fetch: half a second per partition, measured.)

The high watermark is the larger of the ListOffsets answer and the one the consumer's last
fetch response carried (librdkafka caches it). On Apache Kafka they agree; the embedded test
broker answers ListOffsets with the base offset of the partition's last record batch plus one,
so only the fetch response is exact there once the partition was fetched.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from apps.ingest import metrics
from cybermesh.logging import get_logger

__all__ = ["LagMonitor"]

logger = get_logger(__name__)

Position = tuple[str, int]


@dataclass
class _Request:
    deadline: float
    positions: list[Position]
    latest: dict[Any, Future[Any]]
    earliest: dict[Any, Future[Any]]
    committed: Future[Any]

    def futures(self) -> list[Future[Any]]:
        return [*self.latest.values(), *self.earliest.values(), self.committed]


def _by_position(futures: dict[Any, Future[Any]]) -> dict[Position, int]:
    return {(partition.topic, partition.partition): int(future.result().offset)
            for partition, future in futures.items()}


class LagMonitor:
    """Keeps ``cybermesh_ingest_consumer_lag_messages`` for a consumer's assignment."""

    def __init__(self, *, admin_config: dict[str, Any], group_id: str, interval_s: float,
                 timeout_s: float = 10.0) -> None:
        self.group_id = group_id
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.lags: dict[Position, int] = {}
        self._admin_config = admin_config
        self._admin: AdminClient | None = None
        self._request: _Request | None = None
        self._due_at = 0.0

    def poll(self, consumer: Consumer) -> None:
        """Publish answers that arrived; ask again once ``interval_s`` passed. Never waits."""
        now = time.monotonic()
        request = self._request
        if request is not None:
            if all(future.done() for future in request.futures()):
                self._request = None
                self._collect(consumer, request)
            elif now > request.deadline:
                self._request = None
                logger.warning("ingest.lag_refresh_timed_out", timeout_s=self.timeout_s)
            return
        if now < self._due_at:
            return
        self._due_at = now + self.interval_s
        assignment = consumer.assignment()
        if not assignment:
            self._publish({})
            return
        try:
            self._request = self._ask(sorted((p.topic, p.partition) for p in assignment), now)
        except KafkaException as error:
            logger.warning("ingest.lag_refresh_failed", error=str(error)[:300])

    def _ask(self, positions: list[Position], now: float) -> _Request:
        if self._admin is None:
            self._admin = AdminClient(self._admin_config)
        partitions = [TopicPartition(topic, partition) for topic, partition in positions]
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        return _Request(
            deadline=now + self.timeout_s, positions=positions,
            latest=self._admin.list_offsets(dict.fromkeys(partitions, latest),
                                            request_timeout=self.timeout_s),
            earliest=self._admin.list_offsets(dict.fromkeys(partitions, earliest),
                                              request_timeout=self.timeout_s),
            committed=self._admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(self.group_id, partitions)],
                request_timeout=self.timeout_s)[self.group_id])

    def _collect(self, consumer: Consumer, request: _Request) -> None:
        try:
            latest = _by_position(request.latest)
            earliest = _by_position(request.earliest)
            committed = {(p.topic, p.partition): p.offset
                         for p in request.committed.result().topic_partitions}
        except KafkaException as error:
            logger.warning("ingest.lag_refresh_failed", error=str(error)[:300])
            return
        owned = {(p.topic, p.partition) for p in consumer.assignment()}
        lags: dict[Position, int] = {}
        for position in request.positions:
            if position not in owned:  # revoked while the answer was on its way
                continue
            _, fetched_high = consumer.get_watermark_offsets(TopicPartition(*position),
                                                             cached=True)
            high = max(latest.get(position, -1), fetched_high)
            low = max(earliest.get(position, 0), 0)
            done = max(committed.get(position, -1), low)  # negative: nothing committed
            lags[position] = max(0, high - done)
        self._publish({**{p: lag for p, lag in self.lags.items() if p in owned}, **lags})

    def close(self) -> None:
        """Stop reporting anything and drop the admin client (the worker is closing)."""
        self.forget(set(self.lags))
        self._request = None
        self._admin = None

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
