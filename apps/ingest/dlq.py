"""Dead-letter topics: ``<topic>.dlq`` holds the events a validator refused, with the reason.

A dead letter is the original message (same value, same key, the original headers kept) plus
``dlq-*`` headers written by the validator that refused it:

``dlq-reason``            the admission reason (``bad_signature``, ``malformed``, ...)
``dlq-tx-reason``         the transaction layer's precise reason, when there is one
``dlq-detail``            one line for humans (bounded, never key material)
``dlq-retryable``         ``true`` for back-pressure reasons (rate limit, quota, evicted):
                          re-driving later may admit the event; ``false`` for a bad event
``dlq-tx-id``             the transaction id (hex), when the event decoded far enough
``dlq-source-topic`` / ``-partition`` / ``-offset`` / ``-timestamp-ms``  where it came from
                          (only the topic for ``evicted`` / ``expired``: see
                          :mod:`apps.ingest.removals`)
``dlq-node-id`` / ``dlq-at-ms``  which validator refused it, and when

Every validator consumes every event, so one bad event is dead-lettered once per validator
(``dlq-node-id`` tells them apart), and at least once each (a crash between the DLQ write and
the offset commit writes it again; ``dlq-source-*`` identifies repeats).

Re-driving publishes the original value, key and headers back to the source topic with a
``redriven-from`` header; the validators admit it again as if new (the mempool de-duplicates
what was admitted meanwhile). Reading and re-driving use no consumer group: partitions are
assigned directly and read from the beginning until the topic goes quiet.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from apps.mempool.admission import AdmissionReason, AdmissionResult
from cybermesh.kafka_config import consumer_config, dlq_topic
from cybermesh.sdk.headers import MAX_HEADER_VALUE_BYTES, MAX_HEADERS, header_map

__all__ = [
    "DLQ_HEADER_PREFIX",
    "HEADER_REDRIVEN_FROM",
    "DeadLetter",
    "dead_letter_headers",
    "read_dead_letters",
    "redrive",
    "removal_headers",
]

DLQ_HEADER_PREFIX = "dlq-"
HEADER_REASON = "dlq-reason"
HEADER_TX_REASON = "dlq-tx-reason"
HEADER_DETAIL = "dlq-detail"
HEADER_RETRYABLE = "dlq-retryable"
HEADER_TX_ID = "dlq-tx-id"
HEADER_SOURCE_TOPIC = "dlq-source-topic"
HEADER_SOURCE_PARTITION = "dlq-source-partition"
HEADER_SOURCE_OFFSET = "dlq-source-offset"
HEADER_SOURCE_TIMESTAMP = "dlq-source-timestamp-ms"
HEADER_NODE_ID = "dlq-node-id"
HEADER_AT = "dlq-at-ms"
HEADER_REDRIVEN_FROM = "redriven-from"
MAX_DETAIL_CHARS = 300


def message_headers(message: Message) -> list[tuple[str, bytes]]:
    """A consumed message's headers as (name, bytes) pairs (consumers always get a list)."""
    headers = message.headers() or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(name, value.encode() if isinstance(value, str) else (value or b""))
            for name, value in pairs]


def _bounded(value: str) -> bytes:
    return value.encode("utf-8", "replace")[:MAX_HEADER_VALUE_BYTES]


def _verdict_headers(*, reason: str, detail: str, retryable: bool, node_id: str, at_ms: int,
                     tx_reason: str | None, tx_id: bytes | None
                     ) -> list[tuple[str, str | bytes | None]]:
    """The ``dlq-*`` headers saying what the validator decided (not where the event was)."""
    ours: list[tuple[str, str | bytes | None]] = [
        (HEADER_REASON, _bounded(reason)),
        (HEADER_DETAIL, _bounded(" ".join(detail.split())[:MAX_DETAIL_CHARS])),
        (HEADER_RETRYABLE, b"true" if retryable else b"false"),
        (HEADER_NODE_ID, _bounded(node_id)),
        (HEADER_AT, str(at_ms).encode()),
    ]
    if tx_reason:
        ours.append((HEADER_TX_REASON, _bounded(tx_reason)))
    if tx_id:
        ours.append((HEADER_TX_ID, tx_id.hex().encode()))
    return ours


def _without_dlq_headers(headers: Iterable[tuple[str, bytes]]
                         ) -> list[tuple[str, str | bytes | None]]:
    kept: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in headers if not name.startswith(DLQ_HEADER_PREFIX)]
    return kept[:MAX_HEADERS]


def dead_letter_headers(message: Message, *, reason: str, detail: str, retryable: bool,
                        node_id: str, at_ms: int, tx_reason: str | None = None,
                        tx_id: bytes | None = None) -> list[tuple[str, str | bytes | None]]:
    """The original headers (bounded, minus any ``dlq-*`` a producer tried to set) plus ours."""
    timestamp_type, timestamp_ms = message.timestamp()
    source: list[tuple[str, str | bytes | None]] = [
        (HEADER_SOURCE_TOPIC, _bounded(message.topic() or "")),
        (HEADER_SOURCE_PARTITION, str(message.partition()).encode()),
        (HEADER_SOURCE_OFFSET, str(message.offset()).encode()),
        (HEADER_SOURCE_TIMESTAMP, str(timestamp_ms if timestamp_type else -1).encode()),
    ]
    return [*_without_dlq_headers(message_headers(message)), *source,
            *_verdict_headers(reason=reason, detail=detail, retryable=retryable,
                              node_id=node_id, at_ms=at_ms, tx_reason=tx_reason, tx_id=tx_id)]


def removal_headers(original: Iterable[tuple[str, bytes]], *, source_topic: str, reason: str,
                    detail: str, retryable: bool, node_id: str, at_ms: int, tx_id: bytes
                    ) -> list[tuple[str, str | bytes | None]]:
    """Headers of a transaction that left the mempool without a block (evicted, expired).
    Its Kafka message is long gone (the offset was committed at admission), so the source
    partition and offset are unknown: only the topic it came from (or would have) is named."""
    return [*_without_dlq_headers(original), (HEADER_SOURCE_TOPIC, _bounded(source_topic)),
            *_verdict_headers(reason=reason, detail=detail, retryable=retryable,
                              node_id=node_id, at_ms=at_ms, tx_reason=None, tx_id=tx_id)]


def result_headers(message: Message, result: AdmissionResult, *, node_id: str, at_ms: int
                   ) -> list[tuple[str, str | bytes | None]]:
    """Dead-letter headers for a rejected admission result."""
    reason = result.reason or AdmissionReason.MALFORMED
    return dead_letter_headers(
        message, reason=reason.value, detail=result.detail, retryable=reason.retry_later,
        node_id=node_id, at_ms=at_ms,
        tx_reason=result.tx_reason.value if result.tx_reason is not None else None,
        tx_id=result.tx_id)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of a DLQ topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    raw_headers: tuple[tuple[str, bytes], ...]

    @property
    def ref(self) -> str:
        """``topic:partition:offset``, what ``dlq show`` and ``dlq redrive --ref`` take."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get(HEADER_REASON, "")

    @property
    def source_topic(self) -> str:
        return self.headers.get(HEADER_SOURCE_TOPIC, "")

    @property
    def node_id(self) -> str:
        return self.headers.get(HEADER_NODE_ID, "")

    @property
    def retryable(self) -> bool:
        return self.headers.get(HEADER_RETRYABLE) == "true"

    def _source(self) -> str:
        if HEADER_SOURCE_PARTITION not in self.headers:  # left the mempool: no message
            return self.source_topic
        return (f"{self.source_topic}:{self.headers.get(HEADER_SOURCE_PARTITION)}:"
                f"{self.headers.get(HEADER_SOURCE_OFFSET)}")

    def summary(self) -> dict[str, Any]:
        return {"ref": self.ref, "reason": self.reason,
                "tx_reason": self.headers.get(HEADER_TX_REASON),
                "detail": self.headers.get(HEADER_DETAIL, ""),
                "retryable": self.retryable, "tx_id": self.headers.get(HEADER_TX_ID),
                "source": self._source(),
                "node_id": self.node_id, "at_ms": self.headers.get(HEADER_AT),
                "size_bytes": len(self.value)}


def _reader(bootstrap_servers: str | None) -> Consumer:
    # A throwaway group id: offsets are never committed, nobody else's group is touched.
    return Consumer(consumer_config(
        group_id=f"cybermesh-dlq-reader-{uuid.uuid4().hex[:12]}",
        bootstrap_servers=bootstrap_servers,
        ))


def _assign_all(consumer: Consumer, topics: Sequence[str], timeout_s: float
                ) -> dict[tuple[str, int], int]:
    """Assign every partition of ``topics`` from the beginning; return the high watermark
    each reports now (a hint: reading goes at least that far, see :func:`read_dead_letters`)."""
    assignment: list[TopicPartition] = []
    ends: dict[tuple[str, int], int] = {}
    metadata = consumer.list_topics(timeout=timeout_s)
    for name in topics:
        topic_metadata = metadata.topics.get(name)
        if topic_metadata is None or topic_metadata.error is not None:
            continue
        for partition in sorted(topic_metadata.partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(name, partition),
                                                        timeout=timeout_s)
            ends[(name, partition)] = high
            assignment.append(TopicPartition(name, partition, OFFSET_BEGINNING))
    if assignment:
        consumer.assign(assignment)
    return ends


def _letter(message: Message) -> DeadLetter:
    raw = tuple(message_headers(message))
    return DeadLetter(message.topic() or "", message.partition() or 0, message.offset() or 0,
                      message.key(), message.value() or b"", header_map(raw), raw)


def read_dead_letters(topics: Sequence[str], *, bootstrap_servers: str | None = None,
                      limit: int | None = None, timeout_s: float = 10.0, quiet_s: float = 1.0,
                      predicate: Callable[[DeadLetter], bool] | None = None
                      ) -> Iterator[DeadLetter]:
    """The dead letters of ``topics`` (DLQ topic names), oldest first per partition; topics
    that do not exist yield nothing.

    Reading stops once every partition is past the high watermark it reported at the start
    *and* nothing new arrived for ``quiet_s`` (some Kafka-protocol brokers, the embedded test
    broker among them, under-report the watermark, so it cannot be the only end mark), or
    after ``timeout_s`` without progress.
    """
    consumer = _reader(bootstrap_servers)
    try:
        pending = {position: high for position, high in
                   _assign_all(consumer, topics, timeout_s).items() if high > 0}
        if not pending and not consumer.assignment():
            return
        produced = 0
        last_progress = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last_progress > (timeout_s if pending else quiet_s):
                return
            for message in consumer.consume(500, min(0.5, quiet_s)):
                if message.error() is not None:
                    continue
                last_progress = time.monotonic()
                position = (message.topic() or "", message.partition() or 0)
                if position in pending and (message.offset() or 0) + 1 >= pending[position]:
                    pending.pop(position)
                letter = _letter(message)
                if predicate is not None and not predicate(letter):
                    continue
                yield letter
                produced += 1
                if limit is not None and produced >= limit:
                    return
    finally:
        consumer.close()


def dlq_topics_for(source_topics: Iterable[str]) -> list[str]:
    return [dlq_topic(name) for name in source_topics]


def redrive(letters: Iterable[DeadLetter], *, producer: Producer,
            timeout_s: float = 30.0) -> tuple[int, int]:
    """Publish each dead letter back to its source topic; return (acknowledged, failed)."""
    outcome = {"ok": 0, "failed": 0}

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        outcome["failed" if error is not None else "ok"] += 1

    for letter in letters:
        if not letter.source_topic:
            outcome["failed"] += 1
            continue
        headers: list[tuple[str, str | bytes | None]] = [
            (name, value) for name, value in letter.raw_headers
                   if not name.startswith(DLQ_HEADER_PREFIX) and name != HEADER_REDRIVEN_FROM]
        headers.append((HEADER_REDRIVEN_FROM, letter.ref.encode()))
        while True:
            try:
                producer.produce(letter.source_topic, value=letter.value, key=letter.key,
                                 headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(timeout_s)
    return outcome["ok"], outcome["failed"] + remaining
