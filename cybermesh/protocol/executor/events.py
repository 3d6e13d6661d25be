"""Domain events: what a block changed, in the order it changed it, for notifications.

``apply_block`` returns them in a deterministic order (expiries first, by (time, key); then
transactions in block order; then the epoch boundary). The commit path writes them to the
outbox in the same database transaction as the block; :meth:`to_cbor` gives each a stable
``[type, fields...]`` form for that.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.executor.keys import Subject

__all__ = [
    "AuditAnchored",
    "DomainEvent",
    "EvidenceConfirmed",
    "IgnoreReason",
    "ParametersChanged",
    "PolicyChangeKind",
    "PolicyChanged",
    "Quarantined",
    "ReleaseReason",
    "Released",
    "ReputationChanged",
    "TxIgnored",
    "ValidatorSetChanged",
]


class IgnoreReason(enum.StrEnum):
    """Why a well-formed transaction in a committed block had no effect (it stays in the
    block; the executor never fails a block for one transaction)."""

    WRONG_CHAIN = "wrong_chain"
    STALE = "stale"  # created more than tx_max_age_ms before the block
    FROM_THE_FUTURE = "from_the_future"  # created more than tx_max_future_ms after it
    DUPLICATE = "duplicate"  # its id was already applied (replay)
    ALREADY_EXPIRED = "already_expired"  # a rule or quarantine whose expiry has passed
    RULE_NOT_FOUND = "rule_not_found"
    NOT_QUARANTINED = "not_quarantined"
    UNKNOWN_VALIDATOR = "unknown_validator"
    DUPLICATE_EVIDENCE = "duplicate_evidence"
    UNAUTHORIZED = "unauthorized"  # anchor not signed with the validator's registered key
    STALE_ANCHOR = "stale_anchor"  # audit sequence did not advance
    WRONG_EPOCH = "wrong_epoch"
    BAD_APPROVAL = "bad_approval"  # an approver is unknown or its signature fails
    NO_QUORUM = "no_quorum"
    DUPLICATE_CHANGE = "duplicate_change"
    TOO_MANY_PENDING = "too_many_pending"
    INVALID_CHANGE = "invalid_change"  # e.g. adding a validator id or key that exists


class ReleaseReason(enum.StrEnum):
    EXPIRED = "expired"
    MANUAL = "manual"


class PolicyChangeKind(enum.StrEnum):
    SET = "set"
    REMOVED = "removed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ReputationChanged:
    subject: Subject
    old_ppm: int
    new_ppm: int
    cause: bytes  # transaction id

    def to_cbor(self) -> CborValue:
        return ["reputation_changed", self.subject.to_cbor(), self.old_ppm, self.new_ppm,
                self.cause]


@dataclass(frozen=True, slots=True)
class Quarantined:
    subject: Subject
    until_ms: int
    reason: str
    cause: bytes

    def to_cbor(self) -> CborValue:
        return ["quarantined", self.subject.to_cbor(), self.until_ms, self.reason, self.cause]


@dataclass(frozen=True, slots=True)
class Released:
    subject: Subject
    reason: ReleaseReason
    cause: bytes | None  # the release transaction, None when it expired

    def to_cbor(self) -> CborValue:
        return ["released", self.subject.to_cbor(), self.reason.value, self.cause]


@dataclass(frozen=True, slots=True)
class PolicyChanged:
    entity: tuple[str, str]
    scope: str
    action: str
    change: PolicyChangeKind
    expires_at_ms: int
    cause: bytes | None

    def to_cbor(self) -> CborValue:
        return ["policy_changed", list(self.entity), self.scope, self.action,
                self.change.value, self.expires_at_ms, self.cause]


@dataclass(frozen=True, slots=True)
class EvidenceConfirmed:
    evidence_id: bytes
    event_ids: tuple[bytes, ...]  # events newly confirmed by it (empty for equivocation)
    subjects: tuple[Subject, ...]  # whose reputation it lowered

    def to_cbor(self) -> CborValue:
        return ["evidence_confirmed", self.evidence_id, list(self.event_ids),
                [subject.to_cbor() for subject in self.subjects]]


@dataclass(frozen=True, slots=True)
class ValidatorSetChanged:
    epoch: int
    effective_height: int
    validators: tuple[tuple[str, bytes, int], ...]  # (id, public key, power), ascending id

    def to_cbor(self) -> CborValue:
        return ["validator_set_changed", self.epoch, self.effective_height,
                [list(entry) for entry in self.validators]]


@dataclass(frozen=True, slots=True)
class ParametersChanged:
    epoch: int
    changed: tuple[tuple[str, int], ...]  # (parameter, new value), in application order

    def to_cbor(self) -> CborValue:
        return ["parameters_changed", self.epoch, [list(entry) for entry in self.changed]]


@dataclass(frozen=True, slots=True)
class AuditAnchored:
    validator_id: str
    audit_seq: int
    head_hash: bytes
    cause: bytes

    def to_cbor(self) -> CborValue:
        return ["audit_anchored", self.validator_id, self.audit_seq, self.head_hash,
                self.cause]


@dataclass(frozen=True, slots=True)
class TxIgnored:
    tx_id: bytes
    index: int
    reason: IgnoreReason

    def to_cbor(self) -> CborValue:
        return ["tx_ignored", self.tx_id, self.index, self.reason.value]


DomainEvent: TypeAlias = (ReputationChanged | Quarantined | Released | PolicyChanged
                          | EvidenceConfirmed | ValidatorSetChanged | ParametersChanged
                          | AuditAnchored | TxIgnored)
