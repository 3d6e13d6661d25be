"""Fixtures for the outbox tests: unique topics on the session broker, outbox rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from apps.ledger.models import OutboxMessage
from cybermesh.embedded_broker import EmbeddedBroker
from tests.ingest.kafka_support import unique_topics


@pytest.fixture
def topics() -> dict[str, str]:
    return unique_topics("n")


@pytest.fixture
def kafka_settings(settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str]
                   ) -> Iterator[Any]:
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker.bootstrap_servers
    settings.KAFKA_TOPICS = topics
    settings.NOTIFICATIONS_MESSAGE_TIMEOUT_MS = 10_000
    yield settings


def make_outbox_rows(topics: dict[str, str], heights: range) -> list[OutboxMessage]:
    """What a block commit writes: a commit notice per height and one reputation change."""
    now = timezone.now()
    rows = []
    for height in heights:
        rows.append(OutboxMessage(
            dedupe_id=f"block:{height}:0", topic=topics["commits"], key=str(height),
            payload={"height": height, "hash": f"{height:064x}", "state_root": "ab" * 32,
                     "tx_count": height % 7},
            height=height, position=0, created_at=now))
        rows.append(OutboxMessage(
            dedupe_id=f"block:{height}:1", topic=topics["reputation"],
            key=f"ip:10.0.{height % 256}.1",
            payload={"entity": ["ip", f"10.0.{height % 256}.1"], "score": -height},
            height=height, position=1, created_at=now))
    return OutboxMessage.objects.bulk_create(rows)
