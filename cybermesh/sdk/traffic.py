"""A realistic mix of AI-layer traffic, and the bad events an attacker or a bug would send.

Used by ``manage.py produce`` (demo traffic), the ingest tests and the benchmark. Everything
random comes from one seeded :class:`random.Random`, so a run can be replayed from its seed.

The mix: mostly security events about a small, skewed population of offenders (a few noisy IPs
get most alerts, as in real detector output), some evidence backing earlier events, a few policy
changes (quarantines and deny rules with an expiry). Bad events, on request:

``malformed``    bytes that are not CBOR (junk, or a transaction cut short)
``forged``       a valid transaction with one bit of its signature flipped
``oversized``    a value larger than any transaction may be
``unauthorized`` correctly signed by a key the validators do not know
``replayed``     a valid transaction's nonce reused for different content, by the same key
"""

from __future__ import annotations

import enum
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.txs import (
    MAX_TX_BYTES,
    Artifact,
    Category,
    CustodyAction,
    CustodyEntry,
    Entity,
    EntityKind,
    Evidence,
    EvidenceKind,
    Payload,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    SecurityEvent,
    Transaction,
    TxKind,
    sign_transaction,
)
from cybermesh.sdk.headers import partition_key

__all__ = ["BadKind", "Event", "TrafficGenerator"]

_HOUR_MS = 3_600_000


class BadKind(enum.StrEnum):
    MALFORMED = "malformed"
    FORGED = "forged"
    OVERSIZED = "oversized"
    UNAUTHORIZED = "unauthorized"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class Event:
    """One message to publish: its value, key and kind; ``transaction`` when it is valid (or
    at least decodes), ``bad`` when it is meant to be refused."""

    kind: TxKind
    value: bytes
    key: bytes
    transaction: Transaction | None = None
    bad: BadKind | None = None


class TrafficGenerator:
    """Payloads and signed events for one producer, from a seed."""

    def __init__(self, signing_key: SigningKey, *, producer_id: str, chain_id: str,
                 seed: int, offenders: int = 200) -> None:
        self.signing_key = signing_key
        self.producer_id = producer_id
        self.chain_id = chain_id
        self.seed = seed
        self.random = random.Random(seed)  # noqa: S311 - traffic, not keys
        self._offenders = [self._random_entity() for _ in range(offenders)]
        self._recent_events: list[bytes] = []
        self._nonce = self.random.randrange(1 << 32) << 20
        self._stranger = SigningKey.from_seed(
            hashlib.sha256(b"cybermesh/traffic/unauthorized" + str(seed).encode()).digest())

    # --- payloads ---------------------------------------------------------------------------

    def _random_entity(self) -> Entity:
        roll = self.random.random()
        if roll < 0.7:
            return Entity.of(EntityKind.IP, f"{self.random.randrange(1, 224)}."
                             f"{self.random.randrange(256)}.{self.random.randrange(256)}."
                             f"{self.random.randrange(1, 255)}")
        if roll < 0.85:
            return Entity.of(EntityKind.HOST, f"host{self.random.randrange(10_000)}.example.net")
        return Entity.of(EntityKind.ACCOUNT, f"user{self.random.randrange(10_000)}")

    def offender(self) -> Entity:
        # Skewed: index ~ Pareto, so a few offenders get most alerts.
        index = min(int(self.random.paretovariate(1.2)) - 1, len(self._offenders) - 1)
        return self._offenders[index]

    def security_event(self, now_ms: int) -> SecurityEvent:
        return SecurityEvent(
            source=self.random.choice(["ids", "edr", "waf", "netflow", "auth"]),
            offender=self.offender(),
            category=self.random.choice(list(Category)),
            severity=self.random.choices(range(1, 11), weights=[8, 10, 12, 12, 10, 8, 6, 4, 2,
                                                                1])[0],
            confidence_bps=self.random.randrange(3000, 10_001),
            observed_at_ms=now_ms - self.random.randrange(0, 5000),
            detector=f"model-{self.random.choice(['lstm', 'iforest', 'rules', 'gbm'])}/v3",
            payload_ref=hashlib.sha256(self.random.randbytes(16)).hexdigest(),
        )

    def evidence(self, now_ms: int) -> Evidence:
        supports = tuple(sorted(set(self.random.sample(self._recent_events, k=min(
            len(self._recent_events), self.random.randint(1, 3)))))) or (
            hashlib.sha256(self.random.randbytes(8)).digest(),)
        artifacts = tuple(sorted((Artifact(hashlib.sha256(self.random.randbytes(8)).digest(),
                                           self.random.choice(["application/vnd.tcpdump.pcap",
                                                               "text/plain"]),
                                           self.random.randrange(1, 1 << 24))
                                  for _ in range(self.random.randint(1, 3))),
                                 key=lambda artifact: artifact.sha256))
        custody = (CustodyEntry("sensor-7", CustodyAction.COLLECTED, now_ms - 2000),
                   CustodyEntry(self.producer_id, CustodyAction.ANALYZED, now_ms - 1000))
        return Evidence(kind=EvidenceKind.ARTIFACTS, artifacts=artifacts, custody=custody,
                        supports=supports)

    def policy(self, now_ms: int) -> PolicyChange:
        entity = self.offender()
        if self.random.random() < 0.5:
            return PolicyChange(operation=PolicyOperation.QUARANTINE, entity=entity,
                                reason="repeated high-severity alerts",
                                expires_at_ms=now_ms + 24 * _HOUR_MS)
        return PolicyChange(operation=PolicyOperation.SET_RULE, entity=entity,
                            reason="detector consensus", scope="ingress",
                            action=PolicyAction.DENY, expires_at_ms=now_ms + 6 * _HOUR_MS)

    def payload(self, now_ms: int, kind: TxKind | None = None) -> Payload:
        """A payload of ``kind``, or of the realistic mix (85% events, 10% evidence, 5%
        policy)."""
        if kind is None:
            roll = self.random.random()
            kind = (TxKind.SECURITY_EVENT if roll < 0.85 else
                    TxKind.EVIDENCE if roll < 0.95 else TxKind.POLICY)
        if kind is TxKind.SECURITY_EVENT:
            return self.security_event(now_ms)
        if kind is TxKind.EVIDENCE:
            return self.evidence(now_ms)
        if kind is TxKind.POLICY:
            return self.policy(now_ms)
        raise ValueError(f"the AI layer does not publish {kind.value} transactions")

    # --- signed events ----------------------------------------------------------------------

    def next_nonce(self) -> int:
        self._nonce += 1
        return self._nonce

    def sign(self, payload: Payload, now_ms: int, *, nonce: int | None = None,
             signing_key: SigningKey | None = None) -> Transaction:
        transaction = sign_transaction(signing_key or self.signing_key, payload,
                                       chain_id=self.chain_id, producer_id=self.producer_id,
                                       nonce=self.next_nonce() if nonce is None else nonce,
                                       created_at_ms=now_ms)
        if transaction.kind is TxKind.SECURITY_EVENT:
            self._recent_events = [*self._recent_events, transaction.tx_id][-64:]
        return transaction

    def valid(self, now_ms: int, kind: TxKind | None = None) -> Event:
        transaction = self.sign(self.payload(now_ms, kind), now_ms)
        return Event(transaction.kind, transaction.wire, partition_key(transaction),
                     transaction)

    def bad(self, bad: BadKind, now_ms: int) -> Event:
        """One event that every validator must refuse, with the reason ``bad`` names."""
        kind = TxKind.SECURITY_EVENT
        if bad is BadKind.MALFORMED:
            # Bytes that are not CBOR at all: a stray "break" byte, or a transaction cut short.
            value = self.random.choice([
                b"\xff" + self.random.randbytes(self.random.randint(0, 200)),
                self.sign(self.payload(now_ms, kind), now_ms).wire[:-7],
            ])
            return Event(kind, value, b"malformed", None, bad)
        if bad is BadKind.OVERSIZED:
            return Event(kind, b"\x82" + bytes(MAX_TX_BYTES + 1024), b"oversized", None, bad)
        if bad is BadKind.FORGED:
            good = self.sign(self.payload(now_ms, kind), now_ms)
            forged = bytearray(good.wire)
            forged[-1] ^= 0x01  # last byte of the signature
            return Event(kind, bytes(forged), partition_key(good), good, bad)
        if bad is BadKind.UNAUTHORIZED:
            stranger = self.sign(self.payload(now_ms, kind), now_ms, signing_key=self._stranger)
            return Event(kind, stranger.wire, partition_key(stranger), stranger, bad)
        if bad is BadKind.REPLAYED:
            nonce = self._nonce  # the nonce of the last valid event, reused
            replay = self.sign(self.payload(now_ms, kind), now_ms, nonce=nonce)
            return Event(kind, replay.wire, partition_key(replay), replay, bad)
        raise ValueError(bad)

    def stream(self, now_ms: int, count: int, *, kind: TxKind | None = None,
               bad_ratio: float = 0.0, bad_kinds: tuple[BadKind, ...] = tuple(BadKind)
               ) -> Iterator[Event]:
        """``count`` events, a ``bad_ratio`` share of them bad (kinds chosen at random)."""
        for _ in range(count):
            if bad_ratio and self.random.random() < bad_ratio:
                yield self.bad(self.random.choice(bad_kinds), now_ms)
            else:
                yield self.valid(now_ms, kind)
