"""Kafka headers of a signed event, and where each kind of event is published.

The message *value* is the transaction's wire bytes (canonical CBOR, see docs/wire-format.md)
and is authoritative: the consumer decodes and verifies it and never trusts a header for a
decision. Headers are informational (routing, dashboards, the DLQ tooling) and bounded.

Keys: a security event is keyed by its offender, a policy change by its entity (the rule's
subject), evidence by the first event it supports (equivocation proofs by the validator), so
related events land on one partition and keep their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cybermesh.protocol.txs import (
    TX_VERSION,
    Evidence,
    GovernanceChange,
    PolicyChange,
    SecurityEvent,
    Transaction,
    TxKind,
)

__all__ = [
    "CONTENT_TYPE",
    "HEADER_CONTENT_TYPE",
    "HEADER_PRODUCER_ID",
    "HEADER_SCHEMA_VERSION",
    "HEADER_TX_ID",
    "HEADER_TX_KIND",
    "KIND_TOPIC_NAMES",
    "MAX_HEADER_VALUE_BYTES",
    "Headers",
    "event_headers",
    "header_map",
    "partition_key",
]

Headers = list[tuple[str, str | bytes | None]]

CONTENT_TYPE = "application/vnd.cybermesh.tx+cbor"
HEADER_CONTENT_TYPE = "content-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_PRODUCER_ID = "producer-id"
HEADER_TX_ID = "tx-id"
HEADER_TX_KIND = "tx-kind"
MAX_HEADER_VALUE_BYTES = 1024
MAX_HEADERS = 32

# Logical KAFKA_TOPICS names for each kind the AI layer publishes.
KIND_TOPIC_NAMES: Mapping[TxKind, str] = {
    TxKind.SECURITY_EVENT: "anomalies",
    TxKind.EVIDENCE: "evidence",
    TxKind.POLICY: "policy",
}


def partition_key(transaction: Transaction) -> bytes:
    """The entity a transaction is about, so its events share a partition (and an order)."""
    payload = transaction.payload
    if isinstance(payload, SecurityEvent):
        return f"{payload.offender.kind.value}:{payload.offender.value}".encode()
    if isinstance(payload, PolicyChange):
        return f"{payload.entity.kind.value}:{payload.entity.value}".encode()
    if isinstance(payload, Evidence):
        if payload.equivocation is not None:
            return f"validator:{payload.equivocation.validator_id}".encode()
        if payload.supports:
            return b"event:" + payload.supports[0].hex().encode()
    if isinstance(payload, GovernanceChange):
        return b"governance"
    return b"tx:" + transaction.tx_id.hex().encode()


def event_headers(transaction: Transaction) -> Headers:
    """Content type, schema version, producer id, kind and tx id (hex) of a transaction."""
    return [
        (HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()),
        (HEADER_SCHEMA_VERSION, str(TX_VERSION).encode()),
        (HEADER_PRODUCER_ID, transaction.producer_id.encode()),
        (HEADER_TX_KIND, transaction.kind.value.encode()),
        (HEADER_TX_ID, transaction.tx_id.hex().encode()),
    ]


def header_map(headers: Iterable[tuple[str, str | bytes | None]] | None) -> dict[str, str]:
    """Headers as text, bounded: at most 32, each value cut at 1 KiB, undecodable bytes
    replaced. The first occurrence of a name wins. For display and routing only."""
    result: dict[str, str] = {}
    for index, (name, value) in enumerate(headers or ()):
        if index >= MAX_HEADERS:
            break
        if name in result:
            continue
        raw = value.encode() if isinstance(value, str) else (value or b"")
        result[name[:64]] = raw[:MAX_HEADER_VALUE_BYTES].decode("utf-8", "replace")
    return result
