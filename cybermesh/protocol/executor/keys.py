"""State keys: every record lives at a 32-byte key of the authenticated map.

A key is ``SHA-256("cybermesh/state/v1/" || namespace || 0x00 || identity)``. The identity of
text-named things is their fields in UTF-8 joined by NUL bytes (no field can contain NUL: the
schemas refuse control characters), of a transaction its 32-byte id, and of an equivocation the
canonical CBOR of ``[validator, type, epoch, view]``. Hashing spreads keys uniformly over the
sparse Merkle tree (so paths stay about log2(n) deep) and the namespace keeps, say, the
reputation and the quarantine of one entity apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cybermesh.protocol.codec import CborValue, encode
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.policy import PolicyAction

__all__ = [
    "CHAIN_KEY",
    "PARAMETERS_KEY",
    "PENDING_KEY",
    "VALIDATORS_KEY",
    "Subject",
    "anchor_key",
    "equivocation_key",
    "quarantine_key",
    "reputation_key",
    "rule_key",
    "rule_key_of",
    "tx_key",
]

VALIDATOR_SUBJECT_KIND = "validator"


@dataclass(frozen=True, slots=True, order=True)
class Subject:
    """Whose reputation or quarantine: an entity (``kind`` is an EntityKind value) or a
    validator (``kind == "validator"``, ``value`` its id)."""

    kind: str
    value: str

    @classmethod
    def of(cls, entity: Entity) -> Subject:
        return cls(entity.kind.value, entity.value)

    @classmethod
    def validator(cls, validator_id: str) -> Subject:
        return cls(VALIDATOR_SUBJECT_KIND, validator_id)

    @property
    def is_validator(self) -> bool:
        return self.kind == VALIDATOR_SUBJECT_KIND

    def to_cbor(self) -> list[CborValue]:
        return [self.kind, self.value]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


def _namespace(name: str) -> hashlib._Hash:
    return hashlib.sha256(b"cybermesh/state/v1/" + name.encode() + b"\x00")


_REPUTATION = _namespace("reputation")
_QUARANTINE = _namespace("quarantine")
_RULE = _namespace("rule")
_TX = _namespace("tx")
_EQUIVOCATION = _namespace("equivocation")
_ANCHOR = _namespace("anchor")
_META = _namespace("meta")


def _key(namespace: hashlib._Hash, identity: bytes) -> bytes:
    hasher = namespace.copy()
    hasher.update(identity)
    return hasher.digest()


def reputation_key(subject: Subject) -> bytes:
    return _key(_REPUTATION, f"{subject.kind}\x00{subject.value}".encode())


def quarantine_key(subject: Subject) -> bytes:
    return _key(_QUARANTINE, f"{subject.kind}\x00{subject.value}".encode())


def rule_key(entity: Entity, scope: str, action: PolicyAction) -> bytes:
    return rule_key_of(entity.kind.value, entity.value, scope, action.value)


def rule_key_of(kind: str, value: str, scope: str, action: str) -> bytes:
    """:func:`rule_key` from plain text (the policy lookup's hot path builds no Entity)."""
    return _key(_RULE, f"{kind}\x00{value}\x00{scope}\x00{action}".encode())


def tx_key(tx_id: bytes) -> bytes:
    return _key(_TX, tx_id)


def equivocation_key(validator_id: str, kind: str, epoch: int, view: int) -> bytes:
    return _key(_EQUIVOCATION, encode([validator_id, kind, epoch, view]))


def anchor_key(validator_id: str) -> bytes:
    return _key(_ANCHOR, validator_id.encode())


CHAIN_KEY = _key(_META, b"chain")
PARAMETERS_KEY = _key(_META, b"parameters")
VALIDATORS_KEY = _key(_META, b"validators")
PENDING_KEY = _key(_META, b"pending_governance")
