"""Draining the notification outbox to the ``control.*`` Kafka topics.

The block commit writes :class:`~apps.ledger.models.OutboxMessage` rows in the commit
transaction, so a notification exists if and only if its block does. This module publishes
them, at least once:

1. read a batch of unsent rows in commit order (height, position);
2. publish each with an idempotent producer (acks=all, enable.idempotence), keyed by its
   entity, the value the canonical JSON of its payload, and headers carrying the stable
   ``dedupe-id`` (``block:<height>:<position>``, the same on every validator);
3. wait for the broker's acknowledgements (delivery callbacks) and mark exactly the
   acknowledged rows sent, in one short transaction, never before the broker said so.

A crash between 2 and 3 publishes those rows again on the next drain: consumers drop repeats by
``dedupe-id``. That is the contract (see docs/kafka.md), because Kafka transactions are not
something we may rely on across the brokers we run against. Every validator drains its own
outbox, so consumers also see each notification once per validator, with the same dedupe id.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer
from django.db.models import Q
from django.utils import timezone
from prometheus_client import Counter, Gauge, Histogram

from apps.ledger.models import OutboxMessage
from cybermesh.db import run_serializable
from cybermesh.kafka_config import producer_config, redacted, setting
from cybermesh.logging import get_logger

__all__ = [
    "CONTENT_TYPE_JSON",
    "HEADER_DEDUPE_ID",
    "HEADER_HEIGHT",
    "DrainResult",
    "OutboxPublisher",
    "OutboxUnavailable",
    "drain_outbox",
    "encode_value",
    "replay_outbox",
    "unsent_count",
]

logger = get_logger(__name__)

CONTENT_TYPE_JSON = "application/json"
HEADER_DEDUPE_ID = "dedupe-id"
HEADER_HEIGHT = "height"
HEADER_POSITION = "position"
HEADER_NODE_ID = "node-id"
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA_VERSION = "schema-version"
SCHEMA_VERSION = b"1"
DEFAULT_BATCH_SIZE = 2000
MAX_BATCH_SIZE = 50_000

PUBLISHED = Counter("cybermesh_outbox_published", "Outbox messages acknowledged by Kafka.",
                    ["topic"])
PUBLISH_FAILURES = Counter("cybermesh_outbox_publish_failures",
                           "Outbox messages Kafka did not acknowledge (retried later).",
                           ["topic"])
UNSENT = Gauge("cybermesh_outbox_unsent", "Outbox rows not yet acknowledged by Kafka.")
DRAIN_SECONDS = Histogram("cybermesh_outbox_drain_seconds",
                          "Wall time of one outbox drain batch.")


class OutboxUnavailable(RuntimeError):
    """Kafka did not acknowledge part of a batch (transient: retry with backoff)."""


@dataclass(frozen=True, slots=True)
class DrainResult:
    """What one drain did: rows acknowledged and marked sent, rows that failed, whether more
    unsent rows were left behind the batch."""

    sent: int
    failed: int
    more: bool
    first_error: str | None = None


def encode_value(payload: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (payloads hold no floats)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


# Rows are read as plain tuples (no model instances): the drain is a hot loop.
_ROW_FIELDS = ("pk", "dedupe_id", "topic", "key", "payload", "height", "position")


class OutboxRow(Protocol):
    pk: Any
    dedupe_id: str
    topic: str
    key: str
    payload: Any
    height: int
    position: int


def _headers(row: OutboxRow, node_id: str) -> list[tuple[str, str | bytes | None]]:
    return [(HEADER_DEDUPE_ID, row.dedupe_id.encode()),
            (HEADER_HEIGHT, str(row.height).encode()),
            (HEADER_POSITION, str(row.position).encode()),
            (HEADER_NODE_ID, node_id.encode()),
            (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.encode()),
            (HEADER_SCHEMA_VERSION, SCHEMA_VERSION)]


@dataclass
class _Acks:
    """Delivery callbacks of one batch (called from ``poll``/``flush`` on this thread)."""

    acked: list[Any] = field(default_factory=list)
    failed: list[Any] = field(default_factory=list)
    first_error: str | None = None

    def callback(self, row_id: Any, topic: str) -> Any:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                self.acked.append(row_id)
                PUBLISHED.labels(topic=topic).inc()
            else:
                self.failed.append(row_id)
                PUBLISH_FAILURES.labels(topic=topic).inc()
                if self.first_error is None:
                    self.first_error = str(error)
        return on_delivery


class OutboxPublisher:
    """An idempotent Kafka producer for outbox rows; reused across drains in one process.

    After any failed batch the producer is discarded and rebuilt: an idempotent producer whose
    broker restarted (losing its producer-id state) can otherwise stay in a fatal error.
    """

    def __init__(self, *, bootstrap_servers: str | None = None,
                 overrides: Mapping[str, Any] | None = None, node_id: str | None = None
                 ) -> None:
        timeout_ms = int(setting("NOTIFICATIONS_MESSAGE_TIMEOUT_MS", 30_000))
        self.config = producer_config(bootstrap_servers=bootstrap_servers, overrides={
            "message.timeout.ms": timeout_ms, "linger.ms": 2,
            "batch.num.messages": 10_000, "queue.buffering.max.messages": 200_000,
            **(overrides or {})})
        self.node_id = node_id or str(setting("NODE_ID", "node"))
        self.flush_timeout_s = timeout_ms / 1000 + 5
        self._producer: Producer | None = None
        self._lock = threading.Lock()

    def _client(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.config)
        return self._producer

    def reset(self) -> None:
        if self._producer is not None:
            self._producer.flush(0)
            self._producer = None

    def publish(self, rows: Sequence[OutboxRow]) -> _Acks:
        """Publish ``rows`` in order and wait for every acknowledgement or failure."""
        acks = _Acks()
        with self._lock:
            producer = self._client()
            for row in rows:
                on_delivery = acks.callback(row.pk, row.topic)
                while True:
                    try:
                        producer.produce(row.topic, value=encode_value(row.payload),
                                         key=(row.key or str(row.height)).encode(),
                                         headers=_headers(row, self.node_id),
                                         on_delivery=on_delivery)
                        break
                    except BufferError:
                        producer.poll(0.05)
            remaining = producer.flush(self.flush_timeout_s)
            if remaining or acks.failed:
                logger.warning("outbox.publish_incomplete", remaining=remaining,
                               failed=len(acks.failed), error=acks.first_error,
                               config=redacted(self.config))
                self.reset()
        return acks

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(self.flush_timeout_s)
                self._producer = None


def _unsent(using: str) -> Any:
    return OutboxMessage.objects.using(using).filter(sent_at__isnull=True)


def unsent_count(*, using: str = "default") -> int:
    count = int(_unsent(using).count())
    UNSENT.set(count)
    return count


def _mark_sent(rows: Sequence[OutboxRow], acked: Sequence[Any], *, using: str) -> int:
    """Mark acknowledged rows sent; rows already marked (a concurrent drain) stay as they
    were, so ``sent_at`` records the first acknowledgement.

    When every row of the batch was acknowledged, the rows are named by their (height,
    position) range rather than by a list of ids: the batch is a contiguous run in commit
    order, and no row can appear inside a range already read (a block's rows are written in
    its commit, and heights only grow).
    """
    if not acked:
        return 0
    now = timezone.now()
    if len(acked) == len(rows):
        first, last = rows[0], rows[-1]
        selection = (Q(height__gt=first.height) | Q(height=first.height,
                                                     position__gte=first.position)) & (
            Q(height__lt=last.height) | Q(height=last.height, position__lte=last.position))
    else:
        selection = Q(pk__in=list(acked))

    def update() -> int:
        return int(OutboxMessage.objects.using(using).filter(
            selection, sent_at__isnull=True).update(sent_at=now))

    return int(run_serializable(update, using=using, operation="outbox_mark_sent"))


def drain_outbox(*, publisher: OutboxPublisher, batch_size: int = DEFAULT_BATCH_SIZE,
                 using: str = "default") -> DrainResult:
    """Publish one batch of unsent rows in commit order; mark the acknowledged ones sent.

    Raises nothing for broker trouble: failed rows stay unsent and are reported in the
    result (the Celery task turns ``failed`` into a retry with backoff).
    """
    batch_size = max(1, min(batch_size, MAX_BATCH_SIZE))
    started = time.monotonic()
    rows = list(_unsent(using).order_by("height", "position")
                .values_list(*_ROW_FIELDS, named=True)[:batch_size + 1])
    more = len(rows) > batch_size
    rows = rows[:batch_size]
    if not rows:
        UNSENT.set(0)
        return DrainResult(sent=0, failed=0, more=False)
    acks = publisher.publish(rows)
    _mark_sent(rows, acks.acked, using=using)
    DRAIN_SECONDS.observe(time.monotonic() - started)
    not_acked = len(rows) - len(acks.acked)
    if not_acked:
        logger.warning("outbox.drain_incomplete", sent=len(acks.acked), failed=not_acked,
                       first_height=rows[0].height, error=acks.first_error)
    return DrainResult(sent=len(acks.acked), failed=not_acked, more=more,
                       first_error=acks.first_error)


def replay_outbox(*, publisher: OutboxPublisher, from_height: int, to_height: int,
                  batch_size: int = DEFAULT_BATCH_SIZE, using: str = "default"
                  ) -> DrainResult:
    """Re-publish every row of heights ``from_height..to_height`` (inclusive), sent or not,
    with their original dedupe ids; rows that were unsent become sent when acknowledged."""
    if from_height > to_height:
        raise ValueError("from_height must not exceed to_height")
    sent = failed = 0
    first_error: str | None = None
    cursor: tuple[int, int] = (from_height, -1)
    while True:
        rows = list(OutboxMessage.objects.using(using).filter(
            Q(height__gt=cursor[0]) | Q(height=cursor[0], position__gt=cursor[1]),
            height__lte=to_height).order_by("height", "position")
            .values_list(*_ROW_FIELDS, named=True)[:batch_size])
        if not rows:
            break
        acks = publisher.publish(rows)
        _mark_sent(rows, acks.acked, using=using)
        sent += len(acks.acked)
        failed += len(rows) - len(acks.acked)
        first_error = first_error or acks.first_error
        cursor = (rows[-1].height, rows[-1].position)
    return DrainResult(sent=sent, failed=failed, more=False, first_error=first_error)
