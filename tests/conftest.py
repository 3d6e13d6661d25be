"""Shared fixtures: real services only.

PostgreSQL and Redis are made sure of by ``make test`` (scripts/ensure_services.sh); the
Kafka-protocol broker is started here, once per test session, on a free loopback port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cybermesh.embedded_broker import EmbeddedBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker process (Tansu) over TCP, stopped after the session."""
    log_path = Path(tmp_path_factory.mktemp("kafka")) / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
