"""Valid transactions of every kind, and raw-body helpers to make invalid ones.

Every builder returns a valid object; keyword overrides change one field. ``mutated_wire``
re-encodes and *re-signs* a decoded body after a change, so a test of a schema rule is never
accidentally a test of the signature check.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cybermesh.protocol.codec import decode, encode
from cybermesh.protocol.crypto.signing import Domain, SigningKey
from cybermesh.protocol.txs import (
    Approval,
    Artifact,
    AuditAnchor,
    Category,
    CustodyAction,
    CustodyEntry,
    Entity,
    Equivocation,
    EquivocationType,
    Evidence,
    EvidenceKind,
    GovernanceChange,
    GovernanceOperation,
    ParameterName,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    SecurityEvent,
    SignedStatement,
    Transaction,
    TxKind,
    approval_domain,
    sign_transaction,
)

CHAIN_ID = "cybermesh-test"
T0 = 1_700_000_000_000
PRODUCER_KEY = SigningKey.from_seed(bytes.fromhex("11" * 32))
VALIDATOR_KEYS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
VALIDATOR_IDS = [f"validator-{index}" for index in range(4)]


def security_event(**overrides: Any) -> SecurityEvent:
    fields: dict[str, Any] = {
        "source": "sensor-eu-1",
        "offender": Entity.of("ip", "203.0.113.7"),
        "category": Category.BRUTE_FORCE,
        "severity": 7,
        "confidence_bps": 9000,
        "observed_at_ms": T0 - 5000,
        "detector": "suricata/7.0",
        "payload_ref": "s3://alerts/2023/11/14/a1.json",
    }
    fields.update(overrides)
    return SecurityEvent(**fields)


def artifact_evidence(supports: tuple[bytes, ...] = (b"\x01" * 32,), **overrides: Any) -> Evidence:
    fields: dict[str, Any] = {
        "kind": EvidenceKind.ARTIFACTS,
        "artifacts": (Artifact(b"\xaa" * 32, "application/vnd.tcpdump.pcap", 1_048_576),),
        "custody": (CustodyEntry("sensor-eu-1", CustodyAction.COLLECTED, T0 - 4000),
                    CustodyEntry("soc-vault", CustodyAction.STORED, T0 - 1000)),
        "supports": tuple(sorted(supports)),
    }
    fields.update(overrides)
    return Evidence(**fields)


def equivocation(validator_id: str = "validator-3", epoch: int = 0, view: int = 12,
                 ) -> Evidence:
    return Evidence(EvidenceKind.EQUIVOCATION, equivocation=Equivocation(
        validator_id=validator_id, type=EquivocationType.DOUBLE_VOTE, epoch=epoch, view=view,
        first=SignedStatement(b"\x01" * 32, 40, b"\x05" * 64),
        second=SignedStatement(b"\x02" * 32, 40, b"\x06" * 64)))


def policy(**overrides: Any) -> PolicyChange:
    fields: dict[str, Any] = {
        "operation": PolicyOperation.SET_RULE,
        "entity": Entity.of("cidr", "198.51.100.0/24"),
        "scope": "ingress",
        "action": PolicyAction.DENY,
        "reason": "botnet range reported by CERT",
        "expires_at_ms": T0 + 86_400_000,
    }
    fields.update(overrides)
    return PolicyChange(**fields)


def quarantine(entity: Entity, expires_at_ms: int = T0 + 3_600_000) -> PolicyChange:
    return PolicyChange(PolicyOperation.QUARANTINE, entity, "analyst decision",
                        expires_at_ms=expires_at_ms)


def release(entity: Entity) -> PolicyChange:
    return PolicyChange(PolicyOperation.RELEASE, entity, "false positive")


def approve(change: GovernanceChange, signers: range | list[int] = range(3),
            chain_id: str = CHAIN_ID) -> GovernanceChange:
    """``change`` with approvals by validators ``signers`` (indexes into VALIDATOR_KEYS)."""
    message = change.approval_message()
    domain = approval_domain(chain_id)
    approvals = tuple(sorted(
        (Approval(VALIDATOR_IDS[index], VALIDATOR_KEYS[index].sign(domain, message))
         for index in signers), key=lambda approval: approval.validator_id))
    return GovernanceChange(change.operation, change.epoch, approvals, change.validator_id,
                            change.public_key, change.power, change.address,
                            change.parameter, change.value)


_PLACEHOLDER = (Approval("validator-0", b"\x00" * 64),)


def governance(operation: GovernanceOperation = GovernanceOperation.CHANGE_POWER,
               signers: range | list[int] = range(3), **overrides: Any) -> GovernanceChange:
    defaults: dict[GovernanceOperation, dict[str, Any]] = {
        GovernanceOperation.ADD_VALIDATOR: {
            "validator_id": "validator-9",
            "public_key": SigningKey.from_seed(b"\x99" * 32).public_key.raw,
            "power": 10, "address": "10.0.0.9:7000"},
        GovernanceOperation.REMOVE_VALIDATOR: {"validator_id": "validator-3"},
        GovernanceOperation.CHANGE_POWER: {"validator_id": "validator-1", "power": 20},
        GovernanceOperation.ROTATE_KEY: {
            "validator_id": "validator-2",
            "public_key": SigningKey.from_seed(b"\x77" * 32).public_key.raw},
        GovernanceOperation.CHANGE_PARAMETER: {
            "parameter": ParameterName.QUARANTINE_DURATION_MS, "value": 7_200_000},
    }
    fields: dict[str, Any] = {"epoch": 0, **defaults[operation]}
    fields.update(overrides)
    return approve(GovernanceChange(operation, approvals=_PLACEHOLDER, **fields), signers)


def anchor(validator_id: str = "validator-0", audit_seq: int = 42) -> AuditAnchor:
    return AuditAnchor(validator_id, audit_seq, b"\x42" * 32, "hmac-2024-01")


PAYLOAD_BUILDERS: dict[TxKind, Callable[[], Any]] = {
    TxKind.SECURITY_EVENT: security_event,
    TxKind.EVIDENCE: artifact_evidence,
    TxKind.POLICY: policy,
    TxKind.GOVERNANCE: governance,
    TxKind.AUDIT_ANCHOR: anchor,
}


def signed(payload: Any, *, nonce: int = 1, created_at_ms: int = T0,
           key: SigningKey = PRODUCER_KEY, producer_id: str = "ai-detector-1",
           chain_id: str = CHAIN_ID) -> Transaction:
    if isinstance(payload, AuditAnchor) and key is PRODUCER_KEY:
        key = VALIDATOR_KEYS[VALIDATOR_IDS.index(payload.validator_id)] \
            if payload.validator_id in VALIDATOR_IDS else key
        producer_id = payload.validator_id
    return sign_transaction(key, payload, chain_id=chain_id, producer_id=producer_id,
                            nonce=nonce, created_at_ms=created_at_ms)


def body_of(tx: Transaction) -> list[Any]:
    """The decoded signed body: [version, kind, chain, producer, nonce, created, key, payload]."""
    body = decode(tx.body)
    assert isinstance(body, list)
    return body


def mutated_wire(tx: Transaction, change: Callable[[list[Any]], None],
                 key: SigningKey = PRODUCER_KEY) -> bytes:
    """Wire bytes of ``tx`` after ``change(body)``, correctly signed over the new body."""
    body = body_of(tx)
    change(body)
    body_bytes = encode(body)
    kind = body[1] if isinstance(body[1], str) and body[1] else "x"
    chain = body[2] if isinstance(body[2], str) and body[2] else "x"
    version = body[0] if isinstance(body[0], int) and 0 <= body[0] < 2**32 else 1
    signature = key.sign(Domain(f"tx/{kind}", chain, version), body_bytes)
    return encode([body_bytes, signature])
