"""Publishing dead letters and waiting for the broker to acknowledge every one of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

__all__ = ["LetterPublisher", "LettersNotAcknowledged", "OutgoingLetter"]


class LettersNotAcknowledged(RuntimeError):
    """Some dead letters were refused or not acknowledged in time: retry them all."""


@dataclass(frozen=True, slots=True)
class OutgoingLetter:
    """One message for a DLQ topic."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, str | bytes | None]]


class LetterPublisher:
    """An idempotent producer for DLQ topics; :meth:`publish` returns only once every letter
    is acknowledged."""

    def __init__(self, producer_config: dict[str, Any], *, timeout_s: float) -> None:
        self._config = producer_config
        self.timeout_s = timeout_s
        self._producer: Producer | None = None

    def start(self) -> None:
        self._producer = Producer(self._config)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.timeout_s)
            self._producer = None

    def publish(self, letters: list[OutgoingLetter]) -> None:
        """Produce every letter and wait for the acknowledgements; raise
        :class:`LettersNotAcknowledged` otherwise (the caller retries them all)."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("the dead-letter publisher is not started")
        if not letters:
            return
        failures: list[str] = []

        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for letter in letters:
            while True:
                try:
                    producer.produce(letter.topic, value=letter.value, key=letter.key,
                                     headers=letter.headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.1)
                except KafkaException as error:
                    self.start()
                    raise LettersNotAcknowledged(f"dead letter not accepted: {error}"
                                                 ) from error
        remaining = producer.flush(self.timeout_s)
        if remaining or failures:
            # A fresh idempotent producer for the retry: one whose broker restarted (and lost
            # its producer-id state) can otherwise stay failed for good.
            self.start()
            raise LettersNotAcknowledged(f"{remaining + len(failures)} of {len(letters)} dead "
                                         f"letters not acknowledged: "
                                         f"{failures[0] if failures else 'timeout'}")
