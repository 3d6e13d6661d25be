"""The producer SDK: sign events with a producer key and publish them to the ``ai.*`` topics.

Usage (the AI layer, the demo traffic generator, the tests)::

    key = load_signing_key("producer.json")
    with EventProducer.from_settings(key, producer_id="detector-1", chain_id="cybermesh-demo") \
            as producer:
        producer.publish(SecurityEvent(...))
    # leaving the block flushes; producer.report says what the brokers acknowledged

The producer is idempotent (acks=all, enable.idempotence), so librdkafka's own retries never
write an event twice; a caller that publishes the same transaction again writes the same bytes,
whose tx id the validators de-duplicate. Nonces rise with the clock (microseconds, and strictly
increasing within a process), so a restarted producer never reuses one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from cybermesh.kafka_config import producer_config, topic
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import Payload, Transaction, TxKind, sign_transaction
from cybermesh.sdk.headers import KIND_TOPIC_NAMES, Headers, event_headers, partition_key

__all__ = ["DeliveryReport", "EventProducer", "MonotonicNonce", "PublishError"]


class PublishError(RuntimeError):
    """Events were not acknowledged by the brokers (count and first error, no payloads)."""


class MonotonicNonce:
    """Nonces from the wall clock in microseconds, strictly increasing within the process."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, self._clock_ns() // 1000)
            return self._last


@dataclass
class DeliveryReport:
    """What the brokers acknowledged since the producer was created."""

    delivered: int = 0
    failed: int = 0
    first_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, error: KafkaError | None, _message: Message) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = str(error)


class EventProducer:
    """Sign and publish transactions for one producer identity on one chain."""

    def __init__(self, signing_key: SigningKey, *, producer_id: str, chain_id: str,
                 config: Mapping[str, Any], topics: Mapping[TxKind, str] | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.signing_key = signing_key
        self.producer_id = producer_id
        self.chain_id = chain_id
        self.topics = dict(topics) if topics is not None else {}
        self.report = DeliveryReport()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._nonce = MonotonicNonce()
        self._producer = Producer(dict(config))

    @classmethod
    def from_settings(cls, signing_key: SigningKey, *, producer_id: str, chain_id: str,
                      bootstrap_servers: str | None = None,
                      overrides: Mapping[str, Any] | None = None) -> EventProducer:
        """A producer for the brokers, security options and topics of the Django settings."""
        topics = {kind: topic(name) for kind, name in KIND_TOPIC_NAMES.items()}
        return cls(signing_key, producer_id=producer_id, chain_id=chain_id,
                   config=producer_config(bootstrap_servers=bootstrap_servers,
                                          overrides=overrides),
                   topics=topics)

    def sign(self, payload: Payload, *, created_at_ms: int | None = None,
             nonce: int | None = None, signing_key: SigningKey | None = None,
             producer_id: str | None = None) -> Transaction:
        """A signed transaction of ``payload`` (now, next nonce, this producer by default)."""
        return sign_transaction(
            signing_key or self.signing_key, payload, chain_id=self.chain_id,
            producer_id=producer_id or self.producer_id,
            nonce=self._nonce() if nonce is None else nonce,
            created_at_ms=self._clock_ms() if created_at_ms is None else created_at_ms)

    def topic_for(self, kind: TxKind) -> str:
        try:
            return self.topics[kind]
        except KeyError:
            raise PublishError(f"no ai.* topic for {kind.value} transactions") from None

    def publish(self, payload: Payload, **sign_options: Any) -> Transaction:
        """Sign ``payload`` and publish it; returns the transaction (its ``tx_id`` names it)."""
        transaction = self.sign(payload, **sign_options)
        self.publish_transaction(transaction)
        return transaction

    def publish_transaction(self, transaction: Transaction, *, topic_name: str | None = None,
                            key: bytes | None = None) -> None:
        """Publish an already signed transaction, keyed by its entity, with its headers."""
        self.publish_raw(transaction.wire, topic_name=topic_name or self.topic_for(
            transaction.kind), key=key or partition_key(transaction),
            headers=event_headers(transaction))

    def publish_raw(self, value: bytes, *, topic_name: str, key: bytes | None = None,
                    headers: Headers | None = None) -> None:
        """Publish arbitrary bytes (tests and the demo use it to send malformed events)."""
        while True:
            try:
                self._producer.produce(topic_name, value=value, key=key, headers=headers or [],
                                       on_delivery=self.report.record)
                break
            except BufferError:
                # The local queue is full: serve delivery callbacks until there is room.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> DeliveryReport:
        """Wait for every acknowledgement; raise :class:`PublishError` if any failed."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise PublishError(f"{remaining} events not acknowledged within {timeout_s}s")
        if self.report.failed:
            raise PublishError(f"{self.report.failed} events failed; first error: "
                               f"{self.report.first_error}")
        return self.report

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(5.0)
