"""Signed transactions and allowlists for the mempool tests."""

from __future__ import annotations

from prometheus_client import REGISTRY

from apps.mempool.producers import Producer, ProducerAllowlist
from cybermesh.protocol.codec import decode, encode
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    Entity,
    PolicyChange,
    SecurityEvent,
    Transaction,
    TxKind,
    sign_transaction,
)

CHAIN = "cybermesh-test"
NOW = 1_700_000_000_000
ALICE = SigningKey.from_seed(bytes([1]) * 32)
BOB = SigningKey.from_seed(bytes([2]) * 32)
MALLORY = SigningKey.from_seed(bytes([3]) * 32)


def producer(producer_id: str = "ai-1", key: SigningKey = ALICE, *,
             kinds: tuple[TxKind, ...] = (TxKind.SECURITY_EVENT, TxKind.EVIDENCE),
             rate_per_second: int = 1000, burst: int = 1000,
             max_pending: int = 100_000) -> Producer:
    return Producer(producer_id=producer_id, keys=(key.public_key,), kinds=frozenset(kinds),
                    rate_per_second=rate_per_second, burst=burst, max_pending=max_pending)


def allowlist(*producers: Producer) -> ProducerAllowlist:
    return ProducerAllowlist.of(producers or (producer(), producer("ai-2", BOB)))


def event(nonce: int = 1, *, severity: int = 5, created_at_ms: int = NOW,
          producer_id: str = "ai-1", key: SigningKey = ALICE, chain_id: str = CHAIN,
          detector: str = "det-1") -> Transaction:
    payload = SecurityEvent(source="ids-1", offender=Entity.of("ip", f"10.0.{nonce // 250}."
                                                                     f"{nonce % 250}"),
                            category="scan", severity=severity, confidence_bps=5000,
                            observed_at_ms=created_at_ms - 10, detector=detector,
                            payload_ref="f" * 64)
    return sign_transaction(key, payload, chain_id=chain_id, producer_id=producer_id,
                            nonce=nonce, created_at_ms=created_at_ms)


def policy(nonce: int = 1, *, producer_id: str = "ai-1", key: SigningKey = ALICE) -> Transaction:
    return sign_transaction(key, PolicyChange("quarantine", Entity.of("ip", "10.9.9.9"), "worm",
                                              expires_at_ms=NOW + 60_000),
                            chain_id=CHAIN, producer_id=producer_id, nonce=nonce,
                            created_at_ms=NOW)


def with_signature(transaction: Transaction, signature: bytes) -> bytes:
    """The wire bytes of ``transaction`` with another signature."""
    return encode([transaction.body, signature])


def with_body(transaction: Transaction, change: dict[int, object], key: SigningKey = ALICE,
              *, kind_domain: str | None = None) -> bytes:
    """Re-sign a modified body (fields by index) so that only the modified rule can refuse it."""
    from cybermesh.protocol.crypto.signing import Domain

    body = decode(transaction.body)
    assert isinstance(body, list)
    for index, value in change.items():
        body[index] = value
    body_bytes = encode(body)
    domain = Domain(kind_domain or f"tx/{body[1]}", str(body[2]), int(body[0]))  # type: ignore[arg-type]
    return encode([body_bytes, key.sign(domain, body_bytes)])


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def rejections(reason: str) -> float:
    return sample("cybermesh_mempool_rejections_total", reason=reason)
