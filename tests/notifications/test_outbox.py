"""The outbox drain against a real Kafka-protocol broker and PostgreSQL."""

from __future__ import annotations

import json
import random
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.ledger.models import OutboxMessage
from apps.notifications.management.commands.notifications import Command as NotificationsCommand
from apps.notifications.outbox import (
    HEADER_DEDUPE_ID,
    OutboxPublisher,
    drain_outbox,
    encode_value,
    replay_outbox,
    unsent_count,
)
from apps.notifications.tasks import backoff_seconds
from cybermesh.embedded_broker import EmbeddedBroker, free_loopback_port
from tests.ingest.kafka_support import read_topic
from tests.notifications.conftest import make_outbox_rows

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_drain_publishes_every_row_once_keyed_with_dedupe_id_and_marks_it_sent(
        kafka_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str]) -> None:
    make_outbox_rows(topics, range(1, 51))
    publisher = OutboxPublisher()
    result = drain_outbox(publisher=publisher, batch_size=40)
    assert (result.sent, result.failed, result.more) == (40, 0, True)
    result = drain_outbox(publisher=publisher, batch_size=40)
    assert (result.sent, result.failed, result.more) == (40, 0, True)
    result = drain_outbox(publisher=publisher, batch_size=40)
    assert (result.sent, result.failed, result.more) == (20, 0, False)
    assert unsent_count() == 0
    assert drain_outbox(publisher=publisher).sent == 0  # nothing published twice
    publisher.close()

    commits = read_topic(kafka_broker.bootstrap_servers, topics["commits"], expected=50)
    assert len(commits) == 50
    by_height = {json.loads(record.value)["height"]: record for record in commits}
    assert sorted(by_height) == list(range(1, 51))
    record = by_height[7]
    assert record.key == b"7"
    assert record.headers[HEADER_DEDUPE_ID] == "block:7:0"
    assert record.headers["height"] == "7"
    assert record.headers["content-type"] == "application/json"
    assert record.value == encode_value(OutboxMessage.objects.get(
        dedupe_id="block:7:0").payload)
    reputation = read_topic(kafka_broker.bootstrap_servers, topics["reputation"], expected=50)
    assert sorted(record.headers[HEADER_DEDUPE_ID] for record in reputation) == sorted(
        f"block:{height}:1" for height in range(1, 51))
    # Keyed by entity: every change of one entity is on one partition, in height order.
    by_key: dict[bytes | None, list[tuple[int, int]]] = {}
    for record in reputation:
        by_key.setdefault(record.key, []).append((record.partition,
                                                  int(record.headers["height"])))
    for changes in by_key.values():
        assert len({partition for partition, _ in changes}) == 1


def test_rows_stay_unsent_until_a_broker_acknowledges_them(
        kafka_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str]) -> None:
    make_outbox_rows(topics, range(1, 6))
    nobody = OutboxPublisher(bootstrap_servers=f"127.0.0.1:{free_loopback_port()}",
                             overrides={"message.timeout.ms": 1500})
    result = drain_outbox(publisher=nobody)
    assert (result.sent, result.failed) == (0, 10)
    assert result.first_error
    assert unsent_count() == 10
    assert not OutboxMessage.objects.filter(sent_at__isnull=False).exists()

    result = drain_outbox(publisher=OutboxPublisher())
    assert (result.sent, result.failed) == (10, 0)
    assert unsent_count() == 0


def test_broker_outage_leaves_rows_unsent_and_the_same_publisher_drains_after_restart(
        kafka_settings: Any, topics: dict[str, str], tmp_path: Any) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    port = broker.port
    try:
        publisher = OutboxPublisher(bootstrap_servers=broker.bootstrap_servers,
                                    overrides={"message.timeout.ms": 2000})
        make_outbox_rows(topics, range(1, 4))
        assert drain_outbox(publisher=publisher).sent == 6
        broker.stop()
        make_outbox_rows(topics, range(4, 11))
        failed = drain_outbox(publisher=publisher)
        assert (failed.sent, failed.failed) == (0, 14)
        assert unsent_count() == 14
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "broker.log").start()
        recovered = drain_outbox(publisher=publisher)
        assert (recovered.sent, recovered.failed) == (14, 0)
        assert unsent_count() == 0
        # Memory storage lost the topic with the restart: what is there now is the drain
        # after the outage, every row once.
        commits = read_topic(broker.bootstrap_servers, topics["commits"], expected=7)
        assert sorted(record.headers[HEADER_DEDUPE_ID] for record in commits) == sorted(
            f"block:{height}:0" for height in range(4, 11))
        publisher.close()
    finally:
        broker.stop()


def test_replay_republishes_a_height_range_with_the_original_dedupe_ids(
        kafka_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str]) -> None:
    make_outbox_rows(topics, range(1, 11))
    publisher = OutboxPublisher()
    assert drain_outbox(publisher=publisher).sent == 20
    first_sent = dict(OutboxMessage.objects.values_list("dedupe_id", "sent_at"))

    result = replay_outbox(publisher=publisher, from_height=3, to_height=5, batch_size=2)
    assert (result.sent, result.failed) == (6, 0)
    commits = read_topic(kafka_broker.bootstrap_servers, topics["commits"], expected=13)
    dedupe_ids = [record.headers[HEADER_DEDUPE_ID] for record in commits]
    assert len(dedupe_ids) == 13
    assert sorted(set(dedupe_ids)) == sorted(f"block:{h}:0" for h in range(1, 11))
    assert sorted(d for d in dedupe_ids if dedupe_ids.count(d) == 2) == sorted(
        f"block:{h}:0" for h in (3, 3, 4, 4, 5, 5))
    # A replay does not rewrite when a row was first acknowledged.
    assert dict(OutboxMessage.objects.values_list("dedupe_id", "sent_at")) == first_sent
    with pytest.raises(ValueError, match="from_height"):
        replay_outbox(publisher=publisher, from_height=5, to_height=4)
    publisher.close()


def test_notifications_command_reports_status_drains_and_replays(
        kafka_settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str]) -> None:
    make_outbox_rows(topics, range(1, 4))

    def run(*args: str) -> dict[str, Any]:
        out = StringIO()
        call_command(NotificationsCommand(), *args, "--json", stdout=out)
        return dict(json.loads(out.getvalue()))

    assert run("status") == {"unsent": 6, "oldest_unsent_height": 1}
    assert run("drain") == {"sent": 6, "unsent": 0}
    assert run("status") == {"unsent": 0, "oldest_unsent_height": None}
    assert run("replay", "--from", "2", "--to", "3") == {"republished": 4, "from": 2, "to": 3}
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--from/--to"):
        run("replay", "--from", "3", "--to", "2")


@pytest.mark.unit
def test_backoff_is_full_jitter_bounded_by_the_cap() -> None:
    rng = random.Random(5)
    for retries in range(12):
        ceiling = min(60.0, 1.0 * 2 ** retries)
        samples = [backoff_seconds(retries, base_s=1.0, cap_s=60.0, rng=rng)
                   for _ in range(200)]
        assert all(0 <= sample <= ceiling for sample in samples)
        assert max(samples) > ceiling * 0.8  # spread over the whole window, not fixed
    assert backoff_seconds(1000, base_s=1.0, cap_s=5.0, rng=rng) <= 5.0


@pytest.mark.unit
def test_message_values_are_canonical_json() -> None:
    assert encode_value({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()
    assert encode_value({"a": 1, "b": 2}) == encode_value({"b": 2, "a": 1})
