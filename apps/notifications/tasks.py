"""Celery tasks that drain the outbox (triggered on commit, and swept periodically).

``drain_outbox_task`` is idempotent (rows are marked sent only after Kafka acknowledged them,
and re-publishing carries the same dedupe id), so ``acks_late`` with
``reject_on_worker_lost`` is safe: a worker killed mid-drain leaves its task to another. Broker
trouble is retried a finite number of times with full-jitter exponential backoff; after that the
periodic sweep picks the rows up again, so nothing waits forever and nothing is dropped.

One drain per node at a time: a Redis lock (named after the node's queue, else ``NODE_ID``)
keeps concurrent triggers from publishing the same rows in parallel; a trigger that finds the
lock taken leaves a flag that makes the running drain go round once more.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import shared_task
from confluent_kafka import KafkaException
from django.conf import settings
from django.db import DatabaseError, close_old_connections

from apps.notifications.outbox import (
    DEFAULT_BATCH_SIZE,
    OutboxPublisher,
    OutboxUnavailable,
    drain_outbox,
)
from cybermesh.db import TransactionRetryExhausted
from cybermesh.kafka_config import setting
from cybermesh.logging import get_logger

__all__ = ["backoff_seconds", "drain_outbox_task", "sweep_outbox_task"]

logger = get_logger(__name__)

TRANSIENT_ERRORS = (OutboxUnavailable, KafkaException, DatabaseError, TransactionRetryExhausted)
DRAIN_TASK = "notifications.drain_outbox"
SWEEP_TASK = "notifications.sweep_outbox"
_publisher: OutboxPublisher | None = None


def publisher() -> OutboxPublisher:
    """This process's outbox producer (one per worker process, built on first use)."""
    global _publisher  # noqa: PLW0603 - one Kafka client per process, by design
    if _publisher is None:
        _publisher = OutboxPublisher()
    return _publisher


def reset_publisher() -> None:
    global _publisher  # noqa: PLW0603
    if _publisher is not None:
        _publisher.close()
    _publisher = None


def backoff_seconds(retries: int, *, base_s: float | None = None,
                    cap_s: float | None = None, rng: random.Random | None = None) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**retries)] (AWS architecture blog)."""
    base = float(setting("NOTIFICATIONS_RETRY_BASE_S", 1.0) if base_s is None else base_s)
    cap = float(setting("NOTIFICATIONS_RETRY_MAX_S", 60.0) if cap_s is None else cap_s)
    return (rng or random).uniform(0, min(cap, base * (2 ** min(retries, 30))))


def _redis() -> Any:
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def _key(name: str) -> str:
    # Named after the node's queue when it has one: local clusters share one Redis database
    # and every one of them has a node-0.
    owner = _queue() or setting("NODE_ID", "node")
    return f"cybermesh:{owner}:outbox:{name}"


@contextmanager
def _single_drain() -> Iterator[bool]:
    """Yield True when this process may drain (it holds the node's drain lock)."""
    client = _redis()
    if client is None:
        yield True
        return
    lock = client.lock(_key("lock"), timeout=int(setting("NOTIFICATIONS_LOCK_TIMEOUT_S", 300)),
                       blocking=False)
    if not lock.acquire():
        client.set(_key("dirty"), b"1", ex=600)
        yield False
        return
    try:
        client.delete(_key("dirty"))
        yield True
    finally:
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - lock expired: another drain may run, harmless
            logger.warning("outbox.lock_release_failed")


def _dirty() -> bool:
    client = _redis()
    return bool(client is not None and client.delete(_key("dirty")))


def _queue() -> str | None:
    return setting("NOTIFICATIONS_QUEUE", None) or None


def enqueue_drain(*, countdown: float | None = None) -> None:
    """Send one drain task (to ``NOTIFICATIONS_QUEUE`` if set)."""
    drain_outbox_task.apply_async(queue=_queue(), countdown=countdown)


@shared_task(bind=True, name=DRAIN_TASK, acks_late=True,  # type: ignore[untyped-decorator]
             reject_on_worker_lost=True, ignore_result=True, max_retries=None)
def drain_outbox_task(self: Any) -> dict[str, int]:
    """Drain until the outbox is empty (or a time budget is spent); retry on broker trouble."""
    close_old_connections()
    budget_s = float(setting("NOTIFICATIONS_DRAIN_BUDGET_S", 20.0))
    batch_size = int(setting("NOTIFICATIONS_BATCH_SIZE", DEFAULT_BATCH_SIZE))
    max_retries = int(setting("NOTIFICATIONS_MAX_RETRIES", 8))
    sent = 0
    with _single_drain() as mine:
        if not mine:
            return {"sent": 0, "skipped": 1}
        deadline = time.monotonic() + budget_s
        try:
            while True:
                result = drain_outbox(publisher=publisher(), batch_size=batch_size)
                sent += result.sent
                if result.failed:
                    raise OutboxUnavailable(f"{result.failed} outbox messages not "
                                            f"acknowledged: {result.first_error}")
                if not result.more or time.monotonic() > deadline:
                    break
        except TRANSIENT_ERRORS as error:
            if self.request.retries >= max_retries:
                logger.error("outbox.drain_gave_up", retries=self.request.retries,
                             error=str(error))
                raise
            countdown = backoff_seconds(self.request.retries)
            logger.warning("outbox.drain_retry", retries=self.request.retries,
                           countdown_s=round(countdown, 3), error=str(error))
            raise self.retry(exc=error, countdown=countdown, queue=_queue()) from None
    if result.more or _dirty():
        enqueue_drain()
    return {"sent": sent}


@shared_task(name=SWEEP_TASK, ignore_result=True, acks_late=True,  # type: ignore[untyped-decorator]
             reject_on_worker_lost=True)
def sweep_outbox_task() -> None:
    """Periodic (beat): start a drain whatever happened to the on-commit triggers."""
    enqueue_drain()


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The beat entry to merge into ``CELERY_BEAT_SCHEDULE``."""
    options = {"queue": _queue()} if _queue() else {}
    return {"notifications-sweep-outbox": {
        "task": SWEEP_TASK,
        "schedule": float(setting("NOTIFICATIONS_SWEEP_INTERVAL_S", 5.0)),
        "options": {**options, "expires": 30},
    }}
