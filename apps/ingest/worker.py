"""The Kafka ingest worker: ``ai.*`` topics -> mempool admission, nothing acknowledged lost.

Each validator consumes the three ``ai.*`` topics in its own consumer group (every validator
sees every event). One loop turn (:meth:`IngestWorker.step`):

1. take a batch (at most ``batch_size`` messages) from the consumer;
2. admit the values through :func:`apps.mempool.admission.admit_batch` (decode, size and
   version, allowlisted producer, one batch of signature checks, replay window, dedupe, rate
   limit, capacity), one call per source topic; it returns only when the admitted rows are
   committed to the database;
3. publish every refused event to ``<topic>.dlq`` with the reason in its headers and wait for
   the broker's acknowledgement;
4. if the batch evicted anything (and at start-up, and every ``removals_interval_s``), publish
   the mempool's pending dead letters (evicted / expired transactions, whose offsets were
   committed long ago: :mod:`apps.ingest.removals`) and wait for the acknowledgement;
5. commit, per partition, the offset after the last event that is admitted, a duplicate or
   dead-lettered (synchronously, before the next batch).

Failure handling, by kind:

* transient (the database is busy or down, the DLQ write was not acknowledged): nothing is
  committed; the batch is retried whole with full-jitter backoff. The partitions are paused
  meanwhile and the consumer keeps polling, so it stays in its group; messages fetched before
  the pause are carried to the next turn. Re-admitting is safe: the mempool answers
  "duplicate" for what it already holds.
* the mempool is full (``pool_full``, node-wide back-pressure): the partition is rewound to
  the first such event, nothing after it is committed, and every partition is paused for
  ``pause_s``; the events are offered again after the pause.
* a producer over its rate or quota (``rate_limited`` / ``quota_exceeded``): dead-lettered
  with ``dlq-retryable: true``. Holding them back would stall the partitions the flooding
  producer shares with everyone else; the DLQ keeps them (re-drivable) and the others flow.
* a bad event (forged, malformed, oversized, replayed, unauthorised, ...): dead-lettered.

A crash anywhere (kill -9) loses nothing: offsets move only past events that are durable in
the mempool or acknowledged by the DLQ topic, and redelivered events are de-duplicated by tx id.
Memory is bounded by one batch plus librdkafka's bounded prefetch queue.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from django.db import DatabaseError, close_old_connections

from apps.ingest import metrics
from apps.ingest.dlq import result_headers
from apps.ingest.lag import LagMonitor
from apps.ingest.letters import LetterPublisher, LettersNotAcknowledged, OutgoingLetter
from apps.ingest.removals import drain_pending_dead_letters
from apps.mempool.admission import AdmissionReason, AdmissionResult, AdmissionStatus
from cybermesh import failpoints
from cybermesh.db import TransactionRetryExhausted
from cybermesh.kafka_config import dlq_topic
from cybermesh.logging import get_logger

__all__ = ["Disposition", "IngestStats", "IngestWorker", "TransientIngestError", "classify"]

logger = get_logger(__name__)

AdmitBatch = Callable[..., list[AdmissionResult]]
MAX_SOURCE_CHARS = 64


class TransientIngestError(RuntimeError):
    """A failure that retrying fixes (the DLQ write was not acknowledged, ...)."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    DatabaseError, TransactionRetryExhausted, KafkaException, TransientIngestError,
    LettersNotAcknowledged)


class Disposition:
    """What becomes of one consumed message."""

    DONE = "done"  # admitted or duplicate: durable in the mempool or the ledger
    DEAD_LETTER = "dead_letter"  # refused: goes to <topic>.dlq, then counts as done
    DEFER = "defer"  # the mempool is full: offer again after a pause


def classify(result: AdmissionResult) -> str:
    """The disposition of an admission result (see the module docstring for why)."""
    if result.status is not AdmissionStatus.REJECTED:
        return Disposition.DONE
    if result.reason is AdmissionReason.POOL_FULL:
        return Disposition.DEFER
    return Disposition.DEAD_LETTER


@dataclass
class IngestStats:
    batches: int = 0
    messages: int = 0
    admitted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    deferred: int = 0
    transient_retries: int = 0
    commit_failures: int = 0
    pauses: int = 0
    removals_dead_lettered: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)

    def count_reason(self, reason: str) -> None:
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        metrics.DEAD_LETTERED.labels(reason=reason).inc()

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in (
            "batches", "messages", "admitted", "duplicates", "dead_lettered", "deferred",
            "transient_retries", "commit_failures", "pauses", "removals_dead_lettered",
            "by_reason")}


def _position(message: Message) -> tuple[str, int]:
    return (message.topic() or "", message.partition() or 0)


def _offset(message: Message) -> int:
    return message.offset() or 0


def _connection_only(config: dict[str, Any]) -> dict[str, Any]:
    """The brokers, security and client id of a client configuration (for an admin client)."""
    return {name: value for name, value in config.items()
            if name in ("bootstrap.servers", "client.id", "security.protocol")
            or name.startswith(("sasl.", "ssl."))}


def _source(topic: str) -> str:
    return f"kafka:{topic}"[:MAX_SOURCE_CHARS]


class IngestWorker:
    """One consumer in the node's group, its DLQ producer, and the batch loop."""

    def __init__(self, *, consumer_config: dict[str, Any], producer_config: dict[str, Any],
                 topics: Sequence[str], admit: AdmitBatch, node_id: str,
                 batch_size: int = 500, poll_timeout_s: float = 0.5, pause_s: float = 1.0,
                 retry_base_s: float = 0.2, retry_max_s: float = 10.0,
                 dlq_timeout_s: float = 30.0, removals_interval_s: float = 5.0,
                 lag_interval_s: float = 10.0, admin_config: dict[str, Any] | None = None,
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
                 rng: random.Random | None = None,
                 assignment: Sequence[TopicPartition] | None = None) -> None:
        self.topics = list(topics)
        self.admit = admit
        self.node_id = node_id
        self.batch_size = max(1, batch_size)
        self.poll_timeout_s = poll_timeout_s
        self.pause_s = pause_s
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.dlq_timeout_s = dlq_timeout_s
        self.removals_interval_s = removals_interval_s
        self.lag = LagMonitor(admin_config=admin_config or _connection_only(consumer_config),
                              interval_s=lag_interval_s,
                              group_id=str(consumer_config.get("group.id", "")))
        self.clock_ms = clock_ms
        self.rng = rng or random.Random()  # noqa: S311 - backoff jitter
        self.stats = IngestStats()
        self.stopping = False
        self._consumer_config = consumer_config
        self._letters = LetterPublisher(producer_config, timeout_s=dlq_timeout_s)
        self._consumer: Consumer | None = None
        self._carry: list[Message] = []
        self._paused_until: float | None = None
        self.last_batch_seconds = 0.0
        # Pending dead letters are drained at start-up (a crash may have left some), after a
        # batch that evicted, and every removals_interval_s (evictions by the API, expiry).
        self._removals_due_at = 0.0
        self._sources = {_source(name): name for name in self.topics}
        # Explicit partitions instead of group membership (benchmarks, replay tools): no
        # rebalances, offsets still committed under the group id.
        self._assignment = list(assignment) if assignment is not None else None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> IngestWorker:
        self._consumer = Consumer(self._consumer_config)
        self._letters.start()
        if self._assignment is not None:
            self._consumer.assign(self._assignment)
        else:
            self._consumer.subscribe(self.topics, on_assign=self._on_assign,
                                     on_revoke=self._on_revoke)
        logger.info("ingest.started", topics=self.topics, node_id=self.node_id)
        return self

    def close(self) -> None:
        """Leave the group. Nothing uncommitted is lost: it is redelivered to the next owner."""
        self._letters.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self.lag.close()
        metrics.IN_FLIGHT.set(0)
        metrics.PAUSED.set(0)

    def run(self, *, should_stop: Callable[[], bool] | None = None,
            max_idle_s: float | None = None) -> IngestStats:
        """Loop :meth:`step` until ``should_stop()`` or ``stopping``, or ``max_idle_s``
        without a message; then close."""
        if self._consumer is None:
            self.start()
        last_message = time.monotonic()
        try:
            while not self.stopping and not (should_stop and should_stop()):
                if self.step():
                    last_message = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - last_message > max_idle_s:
                    break
        finally:
            self.close()
        return self.stats

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("the ingest worker is not started")
        return self._consumer

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        logger.info("ingest.assigned", partitions=[f"{p.topic}:{p.partition}"
                                                   for p in partitions])
        if self._paused_until is not None and partitions:
            consumer.pause(partitions)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        # Carried messages of revoked partitions belong to their next owner now.
        self._carry = [m for m in self._carry if _position(m) not in revoked]
        self.lag.forget(revoked)
        logger.info("ingest.revoked", partitions=sorted(f"{t}:{p}" for t, p in revoked))

    # --- one loop turn ----------------------------------------------------------------------

    def step(self) -> int:
        """Consume one batch and see it through; return how many messages it held."""
        consumer = self.consumer
        self.lag.poll(consumer)  # asks every lag_interval_s (paused or not), never waits
        if self._paused_until is not None:
            if time.monotonic() < self._paused_until:
                self._poll_while_paused(min(self.poll_timeout_s,
                                            self._paused_until - time.monotonic()))
                return 0
            self._resume()
        fetched = self._fetch(self.batch_size - len(self._carry))
        messages = self._carry + [m for m in fetched if self._usable(m)]
        self._carry = []
        if not messages:
            self._sweep_removals()
            return 0
        metrics.IN_FLIGHT.set(len(messages))
        started = time.monotonic()
        self._see_through(messages)
        self.last_batch_seconds = time.monotonic() - started
        metrics.BATCH_SECONDS.observe(self.last_batch_seconds)
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.IN_FLIGHT.set(len(self._carry))
        self.stats.batches += 1
        self.stats.messages += len(messages)
        return len(messages)

    def _fetch(self, room: int) -> list[Message]:
        """Everything already queued (up to ``room``); if nothing is, wait up to the poll
        timeout for the first message and take what is queued with it. ``consume(room, t)``
        alone waits the whole timeout whenever fewer than ``room`` messages are queued, which
        adds the timeout to every batch below saturation (latency) and to the tail of a
        backlog (throughput); batches still fill up to ``room`` when events arrive faster than
        a batch is admitted."""
        if room <= 0:
            return []
        fetched = self.consumer.consume(room, 0)
        if fetched:
            return fetched
        fetched = self.consumer.consume(1, self.poll_timeout_s)
        if fetched and room > 1:
            fetched += self.consumer.consume(room - 1, 0)
        return fetched

    @staticmethod
    def _usable(message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.code() != KafkaError._PARTITION_EOF:
            # librdkafka reconnects and retries on its own; a fatal error surfaces here.
            logger.warning("ingest.consumer_error", error=str(error))
            if error.fatal():
                raise KafkaException(error)
        return False

    def _see_through(self, messages: list[Message]) -> None:
        attempt = 0
        evicted = False  # by any attempt: a retry re-admits as "duplicate", evicting nothing
        while True:
            try:
                close_old_connections()
                dispositions = self._admit(messages)
                self._dead_letter(messages, dispositions)
                evicted = evicted or any(result.evicted for _, result in dispositions)
                if evicted or time.monotonic() >= self._removals_due_at:
                    # Before the offsets move: the batch that evicted is committed only once
                    # what it evicted is in the DLQ (a failure here retries the batch, whose
                    # re-admission answers "duplicate").
                    self.drain_removals()
                break
            except TRANSIENT_ERRORS as error:
                attempt += 1
                self.stats.transient_retries += 1
                metrics.TRANSIENT_RETRIES.labels(error=type(error).__name__).inc()
                if self.stopping:
                    # Shutting down: leave the batch uncommitted; it is redelivered.
                    logger.warning("ingest.batch_abandoned_on_stop", messages=len(messages))
                    return
                delay = self.rng.uniform(0, min(self.retry_max_s,
                                                self.retry_base_s * 2 ** min(attempt, 20)))
                logger.warning("ingest.transient_failure", attempt=attempt,
                               error=f"{type(error).__name__}: {error}"[:300],
                               retry_in_s=round(delay, 3))
                self._wait_paused(delay)
        failpoints.hit("ingest.before_offset_commit")  # durable, offsets not yet committed
        self._commit(messages, dispositions)

    def _admit(self, messages: list[Message]) -> list[tuple[str, AdmissionResult]]:
        by_topic: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            by_topic.setdefault(message.topic() or "", []).append(index)
        dispositions: list[tuple[str, AdmissionResult] | None] = [None] * len(messages)
        now_ms = self.clock_ms()
        # One admission call (one database transaction) per topic, in topic-name order so a
        # batch is always admitted in the same order.
        for topic, indexes in sorted(by_topic.items()):
            raws = [messages[index].value() or b"" for index in indexes]
            results = self.admit(raws, now_ms=now_ms, source=_source(topic))
            for index, result in zip(indexes, results, strict=True):
                dispositions[index] = (classify(result), result)
        return [item for item in dispositions if item is not None]

    def _dead_letter(self, messages: list[Message],
                     dispositions: list[tuple[str, AdmissionResult]]) -> None:
        at_ms = self.clock_ms()
        self._letters.publish([
            OutgoingLetter(dlq_topic(message.topic() or ""), message.key(),
                           message.value() or b"",
                           result_headers(message, result, node_id=self.node_id, at_ms=at_ms))
            for message, (disposition, result) in zip(messages, dispositions, strict=True)
            if disposition == Disposition.DEAD_LETTER])

    # --- transactions that left the mempool without a block ---------------------------------

    def drain_removals(self) -> int:
        """Dead-letter every pending eviction / expiry (:mod:`apps.ingest.removals`); return
        how many were published. Raises a transient error (rows kept) when the broker or the
        database fails."""
        published = 0

        def count(reasons: list[str]) -> None:
            nonlocal published
            for reason in reasons:
                self.stats.count_reason(reason)
            self.stats.removals_dead_lettered += len(reasons)
            published += len(reasons)

        drain_pending_dead_letters(publish=self._letters.publish, sources=self._sources,
                                   node_id=self.node_id, clock_ms=self.clock_ms,
                                   on_published=count)
        self._removals_due_at = time.monotonic() + self.removals_interval_s
        return published

    def _sweep_removals(self) -> None:
        """The periodic drain on an idle turn; a failure waits for the next turn."""
        if time.monotonic() < self._removals_due_at:
            return
        try:
            close_old_connections()
            self.drain_removals()
        except TRANSIENT_ERRORS as error:
            self._removals_due_at = time.monotonic() + self.retry_base_s
            metrics.TRANSIENT_RETRIES.labels(error=type(error).__name__).inc()
            logger.warning("ingest.removals_drain_failed",
                           error=f"{type(error).__name__}: {error}"[:300])

    def _commit(self, messages: list[Message],
                dispositions: list[tuple[str, AdmissionResult]]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        rewind: dict[tuple[str, int], int] = {}
        outcomes: Counter[tuple[str, str]] = Counter()  # counted once per batch, not per event
        for message, (disposition, result) in zip(messages, dispositions, strict=True):
            position = _position(message)
            topic = position[0]
            if disposition == Disposition.DEFER:
                self.stats.deferred += 1
                outcomes[topic, "deferred"] += 1
                rewind.setdefault(position, _offset(message))
                continue
            if disposition == Disposition.DEAD_LETTER:
                reason = result.reason.value if result.reason is not None else "unknown"
                self.stats.dead_lettered += 1
                self.stats.count_reason(reason)
                outcomes[topic, "dead_lettered"] += 1
            elif result.status is AdmissionStatus.ADMITTED:
                self.stats.admitted += 1
                outcomes[topic, "admitted"] += 1
            else:
                self.stats.duplicates += 1
                outcomes[topic, "duplicate"] += 1
            if position not in rewind:
                next_offsets[position] = max(next_offsets.get(position, 0),
                                             _offset(message) + 1)
        for (topic, outcome), count in outcomes.items():
            metrics.MESSAGES.labels(topic=topic, outcome=outcome).inc(count)
        offsets = [TopicPartition(topic, partition, offset)
                   for (topic, partition), offset in sorted(next_offsets.items())]
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as error:
                # Lost the partition in a rebalance, or the coordinator moved: the events are
                # durable here and will be redelivered and answered "duplicate".
                self.stats.commit_failures += 1
                metrics.COMMIT_FAILURES.inc()
                logger.warning("ingest.commit_failed", error=str(error))
        if rewind:
            self._back_off_full_pool(rewind)

    # --- back-pressure ----------------------------------------------------------------------

    def _back_off_full_pool(self, rewind: dict[tuple[str, int], int]) -> None:
        consumer = self.consumer
        for (topic, partition), offset in rewind.items():
            consumer.seek(TopicPartition(topic, partition, offset))
        self._carry = [m for m in self._carry if _position(m) not in rewind]
        self._pause(self.pause_s)
        logger.info("ingest.paused_pool_full", pause_s=self.pause_s,
                    partitions=sorted(f"{t}:{p}@{o}" for (t, p), o in rewind.items()))

    def _pause(self, seconds: float) -> None:
        consumer = self.consumer
        assignment = consumer.assignment()
        if assignment:
            consumer.pause(assignment)
        if self._paused_until is None:
            self.stats.pauses += 1
            metrics.PAUSES.inc()
        self._paused_until = time.monotonic() + seconds
        metrics.PAUSED.set(1)

    def _resume(self) -> None:
        consumer = self.consumer
        assignment = consumer.assignment()
        if assignment:
            consumer.resume(assignment)
        self._paused_until = None
        metrics.PAUSED.set(0)

    def _poll_while_paused(self, seconds: float) -> None:
        """Keep the group membership alive while paused; keep anything already fetched."""
        message = self.consumer.poll(max(0.0, seconds))
        if message is not None and self._usable(message):
            self._carry.append(message)

    def _wait_paused(self, seconds: float) -> None:
        self._pause(seconds)
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self._poll_while_paused(min(0.2, deadline - time.monotonic()))
        self._resume()
