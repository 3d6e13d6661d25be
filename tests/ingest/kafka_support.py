"""Test support for the Kafka tests: read a topic back, unique topic names, worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from django.db import connection

from cybermesh.sdk import header_map

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]


def unique_topics(prefix: str = "t") -> dict[str, str]:
    """A KAFKA_TOPICS mapping whose names no other test uses."""
    suffix = uuid.uuid4().hex[:10]
    return {"anomalies": f"ai.anomalies.{prefix}{suffix}",
            "evidence": f"ai.evidence.{prefix}{suffix}",
            "policy": f"ai.policy.{prefix}{suffix}",
            "commits": f"control.commits.{prefix}{suffix}",
            "reputation": f"control.reputation.{prefix}{suffix}",
            "policy_updates": f"control.policy.{prefix}{suffix}",
            "evidence_updates": f"control.evidence.{prefix}{suffix}"}


def create_topics(bootstrap: str, names: list[str], partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions,
                                            replication_factor=1) for name in names])
    for future in futures.values():
        try:
            future.result(10)
        except Exception as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise


def read_topic(bootstrap: str, topic: str, *, expected: int | None = None,
               timeout_s: float = 30.0, quiet_s: float = 1.0) -> list[Record]:
    """Every record of ``topic`` from the beginning (no consumer group: assigned partitions).

    Stops when ``expected`` records were read (then waits ``quiet_s`` more to catch extras),
    or, without ``expected``, after ``quiet_s`` without new records; gives up at ``timeout_s``.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    deadline = time.monotonic() + timeout_s
    try:
        partitions: list[int] = []
        while time.monotonic() < deadline:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is not None and metadata.error is None and metadata.partitions:
                partitions = sorted(metadata.partitions)
                break
            time.sleep(0.2)
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)
                         for partition in partitions])
        records: list[Record] = []
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.2):
                if message.error():
                    continue
                headers = message.headers() or []
                records.append(Record(message.topic() or "", message.partition() or 0,
                                      message.offset() or 0, message.key(),
                                      message.value() or b"",
                                      header_map(headers.items() if isinstance(headers, dict)
                                                 else headers)))
                last_new = time.monotonic()
            if expected is not None and len(records) >= expected:
                if time.monotonic() - last_new >= quiet_s:
                    break
            elif expected is None and time.monotonic() - last_new >= quiet_s:
                break
        return records
    finally:
        consumer.close()


def database_url() -> str:
    """The URL of the database this test runs against (pytest-django's test database)."""
    settings = connection.settings_dict
    user = settings.get("USER") or "postgres"
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{settings['NAME']}"


def process_env(*, bootstrap: str, topics: Mapping[str, str] | None = None,
                **knobs: Any) -> dict[str, str]:
    """Environment for a worker process: this test database, the broker, test knobs."""
    import json

    env = dict(os.environ)
    env.update({"DJANGO_SETTINGS_MODULE": "tests.ingest.process_settings",
                "DATABASE_URL": database_url(), "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_MAX_POLL_INTERVAL_MS": "6000",
                "PYTHONPATH": str(REPO), "LOG_LEVEL": "WARNING"})
    if topics is not None:
        env["TEST_KAFKA_TOPICS_JSON"] = json.dumps(dict(topics))
    env.update({name: str(value) for name, value in knobs.items()})
    return env


def start_process(argv: list[str], env: Mapping[str, str], log_path: Path
                  ) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(argv, cwd=REPO, env=dict(env), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return int(process.returncode)


def wait_for(predicate: Any, *, timeout_s: float, interval_s: float = 0.2,
             message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def run_until(worker: Any, done: Any, *, timeout_s: float = 60.0) -> Any:
    """Step an :class:`~apps.ingest.worker.IngestWorker` (started if it is not) until
    ``done(worker)``; close it and fail with its stats after ``timeout_s``."""
    if worker._consumer is None:
        worker.start()
    deadline = time.monotonic() + timeout_s
    while not done(worker):
        if time.monotonic() > deadline:
            worker.close()
            raise AssertionError(f"timed out; stats {worker.stats.as_dict()}, "
                                 f"lag {worker.lag.lags}")
        worker.step()
    return worker
