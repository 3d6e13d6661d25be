"""The outbox drained by a real Celery worker process over the real Redis broker.

The worker is ``celery -A cybermesh worker`` in a subprocess, on a queue of its own (so other
tests sharing the Redis database cannot take its tasks), against this test's PostgreSQL
database and a Kafka-protocol broker.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from apps.ledger.models import OutboxMessage
from apps.notifications.outbox import HEADER_DEDUPE_ID
from apps.notifications.services import drain_after_commit
from cybermesh.embedded_broker import EmbeddedBroker
from tests.ingest.kafka_support import (
    PYTHON,
    process_env,
    read_topic,
    start_process,
    stop_process,
    wait_for,
)
from tests.notifications.conftest import make_outbox_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class CeleryWorker:
    def __init__(self, *, queue: str, bootstrap: str, topics: dict[str, str], redis_url: str,
                 log_path: Path, beat: bool = False, **knobs: Any) -> None:
        env = process_env(bootstrap=bootstrap, topics=topics, REDIS_URL=redis_url,
                          NOTIFICATIONS_QUEUE=queue, NODE_ID=f"node-{queue}", **knobs)
        argv = [PYTHON, "-m", "celery", "-A", "cybermesh", "worker", "--pool=solo",
                "--concurrency=1", "-Q", queue, "--without-mingle", "--without-gossip",
                "--without-heartbeat", "--loglevel=INFO"]
        if beat:
            argv += ["-B", "-s", str(log_path.with_suffix(".beat"))]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] = start_process(argv, env, log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def queue() -> str:
    return f"notifications-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def celery_settings(settings: Any, queue: str) -> Any:
    settings.NOTIFICATIONS_QUEUE = queue
    return settings


@pytest.fixture
def worker_factory(tmp_path: Path, redis_url: str, queue: str, topics: dict[str, str]
                   ) -> Iterator[Any]:
    workers: list[CeleryWorker] = []

    def start(bootstrap: str, **knobs: Any) -> CeleryWorker:
        worker = CeleryWorker(queue=queue, bootstrap=bootstrap, topics=topics,
                              redis_url=redis_url,
                              log_path=tmp_path / f"celery-{len(workers)}.log", **knobs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def _unsent() -> int:
    return OutboxMessage.objects.filter(sent_at__isnull=True).count()


def test_commit_triggers_a_celery_drain_that_publishes_and_marks_every_row(
        kafka_settings: Any, celery_settings: Any, kafka_broker: EmbeddedBroker,
        topics: dict[str, str], worker_factory: Any) -> None:
    worker = worker_factory(kafka_broker.bootstrap_servers)
    with transaction.atomic():
        make_outbox_rows(topics, range(1, 201))
        drain_after_commit()
    wait_for(lambda: _unsent() == 0, timeout_s=60, message=f"drain; log:\n{worker.log()}")
    commits = read_topic(kafka_broker.bootstrap_servers, topics["commits"], expected=200)
    assert sorted(int(r.headers["height"]) for r in commits) == list(range(1, 201))
    assert len({r.headers[HEADER_DEDUPE_ID] for r in commits}) == 200


def test_rolled_back_commit_enqueues_nothing(
        kafka_settings: Any, celery_settings: Any, topics: dict[str, str], redis_url: str,
        queue: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    with pytest.raises(RuntimeError), transaction.atomic():
        make_outbox_rows(topics, range(1, 3))
        drain_after_commit()
        raise RuntimeError("the block commit failed")
    assert client.llen(queue) == 0
    with transaction.atomic():
        drain_after_commit()
    assert client.llen(queue) == 1
    client.delete(queue)


def test_celery_drain_retries_through_a_broker_outage_and_publishes_after_restart(
        kafka_settings: Any, celery_settings: Any, topics: dict[str, str],
        worker_factory: Any, tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "outage-broker.log").start()
    port = broker.port
    try:
        worker = worker_factory(broker.bootstrap_servers,
                                NOTIFICATIONS_MESSAGE_TIMEOUT_MS=1500,
                                NOTIFICATIONS_RETRY_BASE_S=0.3, NOTIFICATIONS_RETRY_MAX_S=1.5,
                                NOTIFICATIONS_MAX_RETRIES=100)
        broker.stop()
        with transaction.atomic():
            make_outbox_rows(topics, range(1, 31))
            drain_after_commit()
        wait_for(lambda: "outbox.drain_retry" in worker.log(), timeout_s=30,
                 message=f"a retry; log:\n{worker.log()}")
        assert _unsent() == 60  # nothing is marked sent without an acknowledgement
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "outage-broker.log").start()
        wait_for(lambda: _unsent() == 0, timeout_s=60,
                 message=f"drain after restart; log:\n{worker.log()}")
        commits = read_topic(broker.bootstrap_servers, topics["commits"], expected=30)
        assert sorted(int(r.headers["height"]) for r in commits) == list(range(1, 31))
    finally:
        broker.stop()


def test_beat_sweep_drains_rows_whose_trigger_was_lost(
        kafka_settings: Any, celery_settings: Any, kafka_broker: EmbeddedBroker,
        topics: dict[str, str], worker_factory: Any) -> None:
    make_outbox_rows(topics, range(1, 21))  # committed, but no drain was ever enqueued
    worker = worker_factory(kafka_broker.bootstrap_servers, beat=True,
                            NOTIFICATIONS_SWEEP_INTERVAL_S=1)
    wait_for(lambda: _unsent() == 0, timeout_s=60, message=f"sweep; log:\n{worker.log()}")
    reputation = read_topic(kafka_broker.bootstrap_servers, topics["reputation"], expected=20)
    assert len(reputation) == 20
