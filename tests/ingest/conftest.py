"""Fixtures for the ingest tests: producers with keys on an allowlist, unique topics on the
session broker (three partitions each), the node's settings pointing at them."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from apps.mempool.admission import reset_default_pipeline
from cybermesh.embedded_broker import EmbeddedBroker
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.sdk import EventProducer, TrafficGenerator
from tests.ingest.kafka_support import create_topics, unique_topics

CHAIN_ID = "cybermesh-ingest-test"


@dataclass
class Detector:
    producer_id: str
    key: SigningKey
    rate_per_second: int = 100_000
    burst: int = 100_000
    max_pending: int = 1_000_000

    def allowlist_entry(self) -> dict[str, Any]:
        return {"producer_id": self.producer_id,
                "keys": [{"public_key": self.key.public_key.raw.hex()}],
                "kinds": ["security_event", "evidence", "policy"],
                "rate_per_second": self.rate_per_second, "burst": self.burst,
                "max_pending": self.max_pending}

    def traffic(self, seed: int) -> TrafficGenerator:
        return TrafficGenerator(self.key, producer_id=self.producer_id, chain_id=CHAIN_ID,
                                seed=seed)

    def sdk(self, bootstrap: str) -> EventProducer:
        return EventProducer.from_settings(self.key, producer_id=self.producer_id,
                                           chain_id=CHAIN_ID, bootstrap_servers=bootstrap)


def make_producer(producer_id: str, **limits: Any) -> Detector:
    seed = hashlib.sha256(f"ingest-test/{producer_id}".encode()).digest()
    return Detector(producer_id, SigningKey.from_seed(seed), **limits)


def write_allowlist(path: Path, producers: list[Detector]) -> Path:
    path.write_text(json.dumps({"producers": [p.allowlist_entry() for p in producers]}))
    return path


@pytest.fixture
def producers() -> dict[str, Detector]:
    """Two well-behaved detectors and one that floods (20/s, burst 40)."""
    return {"a": make_producer("detector-a"), "b": make_producer("detector-b"),
            "flood": make_producer("detector-flood", rate_per_second=20, burst=40)}


@pytest.fixture
def topics(kafka_broker: EmbeddedBroker) -> dict[str, str]:
    names = unique_topics("i")
    create_topics(kafka_broker.bootstrap_servers,
                  [names["anomalies"], names["evidence"], names["policy"]])
    return names


@pytest.fixture
def node_settings(settings: Any, kafka_broker: EmbeddedBroker, topics: dict[str, str],
                  producers: dict[str, Detector], tmp_path: Path) -> Iterator[Any]:
    """This node: the session broker, unique topics and group, the test allowlist."""
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_broker.bootstrap_servers
    settings.KAFKA_TOPICS = topics
    settings.KAFKA_CONSUMER_GROUP = f"cybermesh-test-{uuid.uuid4().hex[:10]}"
    settings.KAFKA_SESSION_TIMEOUT_MS = 6000
    settings.KAFKA_MAX_POLL_INTERVAL_MS = 6000
    settings.INGEST_POLL_TIMEOUT_MS = 200
    settings.INGEST_PAUSE_MS = 500
    settings.INGEST_RETRY_BASE_S = 0.05
    settings.INGEST_RETRY_MAX_S = 0.5
    settings.MEMPOOL_CHAIN_ID = CHAIN_ID
    settings.MEMPOOL_PRODUCERS_PATH = str(write_allowlist(tmp_path / "producers.json",
                                                          list(producers.values())))
    reset_default_pipeline()
    yield settings
    reset_default_pipeline()
