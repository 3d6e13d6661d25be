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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Integration tests talk to real PostgreSQL: on any other database they fail, loudly.

    (They never skip: a skipped integration test hides a broken setup. `make test` points
    DATABASE_URL at PostgreSQL.)"""
    if item.get_closest_marker("integration") is None:
        return
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if engine != "django.db.backends.postgresql":
        pytest.fail(f"integration tests need PostgreSQL (DATABASE_URL=postgres://...), "
                    f"not {engine}; run them through `make test`", pytrace=False)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Kafka-protocol broker process (Tansu) over TCP, stopped after the session."""
    log_path = Path(tmp_path_factory.mktemp("kafka")) / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


@pytest.fixture(scope="session")
def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
