"""The real services the integration suite relies on are reachable and configured as required."""

from __future__ import annotations

import time
import uuid

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from django.db import connection

from cybermesh.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_database_is_postgresql_at_serializable_isolation() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW transaction_isolation")
        assert cursor.fetchone()[0] == "serializable"


def test_redis_answers_and_round_trips_a_value(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"cybermesh-test-{uuid.uuid4()}"
    client.set(key, b"value", ex=30)
    assert client.get(key) == b"value"
    client.delete(key)


def test_kafka_broker_round_trips_keyed_messages_through_a_consumer_group(
        kafka_broker: EmbeddedBroker) -> None:
    topic = f"fixture-check-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, num_partitions=2,
                                                replication_factor=1)]).values():
        future.result(timeout=10)
    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                         "enable.idempotence": True, "acks": "all"})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(10)}
    for key, value in sent.items():
        producer.produce(topic, key=key, value=value)
    assert producer.flush(10) == 0

    # A short rebalance timeout: the broker holds JoinGroup for up to max.poll.interval.ms.
    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                         "group.id": f"group-{topic}", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 6000,
                         "max.poll.interval.ms": 6000})
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            received[message.key()] = message.value()
    finally:
        consumer.close()
    assert received == sent
