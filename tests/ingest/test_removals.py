"""Where an evicted or expired transaction is dead-lettered, and what its dead letter says
(pure: no broker, no database)."""

from __future__ import annotations

from typing import Any

import pytest

from apps.ingest.removals import removal_letter, source_topic_for
from apps.mempool.choices import RemovalReason
from apps.mempool.models import PendingDeadLetter
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import Transaction, TxKind
from cybermesh.sdk import TrafficGenerator, header_map, partition_key

pytestmark = pytest.mark.unit

TOPICS = {"anomalies": "ai.anomalies.v1", "evidence": "ai.evidence.v1",
          "policy": "ai.policy.v1"}
SOURCES = {f"kafka:{name}": name for name in ("ai.anomalies.v1", "ai.anomalies.other")}


def transaction(kind: TxKind = TxKind.SECURITY_EVENT) -> Transaction:
    traffic = TrafficGenerator(SigningKey.from_seed(bytes([9]) * 32), producer_id="ai-9",
                               chain_id="chain", seed=1)
    event = traffic.valid(1_700_000_000_000, kind)
    assert event.transaction is not None
    return event.transaction


def row(tx: Transaction, *, source: str, kind: str | None = None,
        reason: RemovalReason = RemovalReason.EVICTED) -> PendingDeadLetter:
    return PendingDeadLetter(tx_id=tx.tx_id, wire=tx.wire, kind=kind or tx.kind.value,
                             source=source, reason=reason, detail="evicted by abc",
                             removed_at_ms=5)


@pytest.fixture(autouse=True)
def kafka_topics(settings: Any) -> None:
    settings.KAFKA_TOPICS = TOPICS


def test_a_kafka_admitted_transaction_goes_back_to_the_dlq_of_its_own_topic() -> None:
    tx = transaction()
    assert source_topic_for(row(tx, source="kafka:ai.anomalies.other"), SOURCES) == \
        "ai.anomalies.other"


@pytest.mark.parametrize(("kind", "topic"), [(TxKind.SECURITY_EVENT, "ai.anomalies.v1"),
                                             (TxKind.EVIDENCE, "ai.evidence.v1"),
                                             (TxKind.POLICY, "ai.policy.v1")])
def test_one_admitted_another_way_goes_to_the_topic_its_kind_is_published_on(
        kind: TxKind, topic: str) -> None:
    assert source_topic_for(row(transaction(kind), source="api"), SOURCES) == topic


@pytest.mark.parametrize("kind", ["governance", "audit_anchor", "not-a-kind"])
def test_kinds_no_ai_topic_carries_have_no_dlq(kind: str) -> None:
    assert source_topic_for(row(transaction(), source="api", kind=kind), SOURCES) is None


def test_the_dead_letter_is_the_admitted_bytes_with_the_sdk_key_and_the_verdict() -> None:
    tx = transaction()
    letter = removal_letter(row(tx, source="api"), source_topic="ai.anomalies.v1",
                            node_id="node-3", at_ms=77)
    headers = header_map(letter.headers)
    assert (letter.topic, letter.key, letter.value) == (
        "ai.anomalies.v1.dlq", partition_key(tx), tx.wire)
    assert headers["dlq-reason"] == "evicted" and headers["dlq-retryable"] == "true"
    assert headers["dlq-source-topic"] == "ai.anomalies.v1"
    assert headers["dlq-tx-id"] == headers["tx-id"] == tx.tx_id.hex()
    assert (headers["dlq-node-id"], headers["dlq-at-ms"]) == ("node-3", "77")
    assert "dlq-source-partition" not in headers  # the message is long gone
    expired = removal_letter(row(tx, source="api", reason=RemovalReason.EXPIRED),
                             source_topic="ai.anomalies.v1", node_id="n", at_ms=1)
    assert header_map(expired.headers)["dlq-retryable"] == "false"
