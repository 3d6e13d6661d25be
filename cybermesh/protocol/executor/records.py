"""State records: the values of the authenticated map, with one canonical encoding each.

A record encodes as the canonical CBOR array ``[type, field, ...]``; the leading type tag lets a
node rebuild the typed state from the stored ``key -> bytes`` map alone
(:func:`decode_record`). Records that expire carry ``expires_at_ms``; the state's expiry index
is derived from it and is not part of the root.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from cybermesh.protocol.codec import CborValue, CodecError, decode, encode
from cybermesh.protocol.executor.keys import Subject
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.governance import GovernanceOperation, ParameterName
from cybermesh.protocol.txs.policy import PolicyAction

__all__ = [
    "AnchorRecord",
    "AppliedTx",
    "ChainRecord",
    "EquivocationRecord",
    "EventRecord",
    "EvidenceRecord",
    "EvidenceStatus",
    "PendingChange",
    "PendingRecord",
    "QuarantineReason",
    "QuarantineRecord",
    "Record",
    "RecordType",
    "ReputationRecord",
    "RuleRecord",
    "StateCorrupt",
    "ValidatorEntry",
    "ValidatorsRecord",
    "decode_record",
    "encode_record",
]


class StateCorrupt(ValueError):
    """Stored state bytes that are not a record this code wrote."""


class RecordType(enum.IntEnum):
    EVENT = 1
    APPLIED_TX = 2
    EVIDENCE = 3
    REPUTATION = 4
    QUARANTINE = 5
    RULE = 6
    EQUIVOCATION = 7
    ANCHOR = 8
    VALIDATORS = 9
    PENDING = 10
    CHAIN = 11
    PARAMETERS = 12


class QuarantineReason(enum.StrEnum):
    REPUTATION = "reputation"  # automatic: reputation at or below the threshold
    MANUAL = "manual"  # a policy transaction
    EQUIVOCATION = "equivocation"  # a validator caught signing two blocks in one view


class EvidenceStatus(enum.StrEnum):
    CONFIRMED = "confirmed"  # at least one supported event was known
    UNMATCHED = "unmatched"  # none of the supported events is known (kept for audit)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A security event, open to confirmation by evidence until it expires."""

    TYPE: ClassVar[RecordType] = RecordType.EVENT
    offender: Entity
    category: str
    severity: int
    confidence_bps: int
    height: int
    confirmed: bool
    expires_at_ms: int

    def fields(self) -> list[CborValue]:
        return [self.offender.to_cbor(), self.category, self.severity, self.confidence_bps,
                self.height, self.confirmed, self.expires_at_ms]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> EventRecord:
        return cls(Entity.from_cbor(items[0]), *items[1:])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AppliedTx:
    """Marks a non-event transaction as applied (replays of its id are no-ops)."""

    TYPE: ClassVar[RecordType] = RecordType.APPLIED_TX
    kind: str
    height: int
    expires_at_ms: int

    def fields(self) -> list[CborValue]:
        return [self.kind, self.height, self.expires_at_ms]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> AppliedTx:
        return cls(*items)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    TYPE: ClassVar[RecordType] = RecordType.EVIDENCE
    status: EvidenceStatus
    event_ids: tuple[bytes, ...]
    height: int
    expires_at_ms: int

    def fields(self) -> list[CborValue]:
        return [self.status.value, list(self.event_ids), self.height, self.expires_at_ms]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> EvidenceRecord:
        return cls(EvidenceStatus(items[0]), tuple(items[1]),  # type: ignore[arg-type]
                   items[2], items[3])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ReputationRecord:
    """Risk (ppm) of a subject as of ``updated_ms``; reputation = 1_000_000 - decayed risk.

    ``expires_at_ms`` is when the risk has decayed to exactly zero: the record is then
    deleted, which is what a subject with no record means.
    """

    TYPE: ClassVar[RecordType] = RecordType.REPUTATION
    subject: Subject
    risk_ppm: int
    updated_ms: int
    expires_at_ms: int

    def fields(self) -> list[CborValue]:
        return [self.subject.to_cbor(), self.risk_ppm, self.updated_ms, self.expires_at_ms]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> ReputationRecord:
        return cls(Subject(*items[0]), *items[1:])  # type: ignore[arg-type,misc]


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    TYPE: ClassVar[RecordType] = RecordType.QUARANTINE
    subject: Subject
    since_ms: int
    expires_at_ms: int
    reason: QuarantineReason
    cause: bytes  # the transaction id that (last) set it

    def fields(self) -> list[CborValue]:
        return [self.subject.to_cbor(), self.since_ms, self.expires_at_ms, self.reason.value,
                self.cause]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> QuarantineRecord:
        return cls(Subject(*items[0]), items[1], items[2],  # type: ignore[arg-type,misc]
                   QuarantineReason(items[3]), items[4])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RuleRecord:
    TYPE: ClassVar[RecordType] = RecordType.RULE
    entity: Entity
    scope: str
    action: PolicyAction
    reason: str
    expires_at_ms: int
    height: int
    cause: bytes

    def fields(self) -> list[CborValue]:
        return [self.entity.to_cbor(), self.scope, self.action.value, self.reason,
                self.expires_at_ms, self.height, self.cause]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> RuleRecord:
        return cls(Entity.from_cbor(items[0]), items[1],  # type: ignore[arg-type]
                   PolicyAction(items[2]), *items[3:])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EquivocationRecord:
    """One punished equivocation (validator, type, epoch, view): punished once, ever (kept
    without expiry; there are as many as there were equivocations)."""

    TYPE: ClassVar[RecordType] = RecordType.EQUIVOCATION
    expires_at_ms: ClassVar[None] = None
    evidence_id: bytes
    height: int

    def fields(self) -> list[CborValue]:
        return [self.evidence_id, self.height]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> EquivocationRecord:
        return cls(*items)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    TYPE: ClassVar[RecordType] = RecordType.ANCHOR
    expires_at_ms: ClassVar[None] = None
    validator_id: str
    audit_seq: int
    head_hash: bytes
    hmac_key_id: str
    height: int
    tx_id: bytes

    def fields(self) -> list[CborValue]:
        return [self.validator_id, self.audit_seq, self.head_hash, self.hmac_key_id,
                self.height, self.tx_id]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> AnchorRecord:
        return cls(*items)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ValidatorEntry:
    validator_id: str
    public_key: bytes
    power: int
    address: str

    def to_cbor(self) -> CborValue:
        return [self.validator_id, self.public_key, self.power, self.address]


@dataclass(frozen=True, slots=True)
class ValidatorsRecord:
    """The registered validators (ascending id) and the ids active in ``epoch``."""

    TYPE: ClassVar[RecordType] = RecordType.VALIDATORS
    expires_at_ms: ClassVar[None] = None
    epoch: int
    registered: tuple[ValidatorEntry, ...]
    active: tuple[str, ...]
    _by_id: dict[str, ValidatorEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {v.validator_id: v for v in self.registered})

    def get(self, validator_id: str) -> ValidatorEntry | None:
        return self._by_id.get(validator_id)

    def active_entries(self) -> tuple[ValidatorEntry, ...]:
        return tuple(self._by_id[validator_id] for validator_id in self.active)

    def fields(self) -> list[CborValue]:
        return [self.epoch, [entry.to_cbor() for entry in self.registered], list(self.active)]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> ValidatorsRecord:
        entries = tuple(ValidatorEntry(*entry) for entry in items[1])  # type: ignore[misc,union-attr]
        return cls(items[0], entries, tuple(items[2]))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PendingChange:
    """An approved governance change waiting for the next epoch; applied in (height, index)
    order. Fields not used by the operation are None."""

    height: int
    index: int
    operation: GovernanceOperation
    validator_id: str | None = None
    public_key: bytes | None = None
    power: int | None = None
    address: str | None = None
    parameter: ParameterName | None = None
    value: int | None = None

    def to_cbor(self) -> CborValue:
        return [self.height, self.index, self.operation.value, self.validator_id,
                self.public_key, self.power, self.address,
                None if self.parameter is None else self.parameter.value, self.value]

    @classmethod
    def from_cbor(cls, items: list[CborValue]) -> PendingChange:
        parameter = None if items[7] is None else ParameterName(items[7])  # type: ignore[arg-type]
        return cls(items[0], items[1], GovernanceOperation(items[2]),  # type: ignore[arg-type]
                   items[3], items[4], items[5], items[6], parameter,  # type: ignore[arg-type]
                   items[8])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class PendingRecord:
    TYPE: ClassVar[RecordType] = RecordType.PENDING
    expires_at_ms: ClassVar[None] = None
    changes: tuple[PendingChange, ...]

    def fields(self) -> list[CborValue]:
        return [[change.to_cbor() for change in self.changes]]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> PendingRecord:
        return cls(tuple(PendingChange.from_cbor(item)  # type: ignore[arg-type]
                         for item in items[0]))  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """Where the chain is: the last applied height and its agreed time, and the epoch."""

    TYPE: ClassVar[RecordType] = RecordType.CHAIN
    expires_at_ms: ClassVar[None] = None
    chain_id: str
    height: int
    timestamp_ms: int
    epoch: int
    epoch_start_height: int

    def fields(self) -> list[CborValue]:
        return [self.chain_id, self.height, self.timestamp_ms, self.epoch,
                self.epoch_start_height]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> ChainRecord:
        return cls(*items)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ParametersRecord:
    TYPE: ClassVar[RecordType] = RecordType.PARAMETERS
    expires_at_ms: ClassVar[None] = None
    parameters: ExecutorParameters

    def fields(self) -> list[CborValue]:
        return [self.parameters.to_cbor()]

    @classmethod
    def from_fields(cls, items: list[CborValue]) -> ParametersRecord:
        return cls(ExecutorParameters.from_cbor(items[0]))


Record: TypeAlias = (EventRecord | AppliedTx | EvidenceRecord | ReputationRecord
                     | QuarantineRecord | RuleRecord | EquivocationRecord | AnchorRecord
                     | ValidatorsRecord | PendingRecord | ChainRecord | ParametersRecord)
_DECODERS: dict[int, Callable[[list[CborValue]], Record]] = {
    record_type.TYPE: record_type.from_fields
    for record_type in (EventRecord, AppliedTx, EvidenceRecord, ReputationRecord,
                        QuarantineRecord, RuleRecord, EquivocationRecord, AnchorRecord,
                        ValidatorsRecord, PendingRecord, ChainRecord, ParametersRecord)
}


def encode_record(record: Record) -> bytes:
    """The canonical bytes of a record: the value stored at its key."""
    return encode([record.TYPE.value, *record.fields()])


def decode_record(data: bytes) -> Record:
    """Parse stored record bytes; raise :class:`StateCorrupt` for anything else."""
    try:
        items = decode(data)
        if type(items) is not list or not items or items[0] not in _DECODERS:
            raise StateCorrupt("not a tagged state record")
        record = _DECODERS[items[0]](items[1:])
    except (CodecError, TxRejected, ValueError, TypeError, IndexError) as error:
        if isinstance(error, StateCorrupt):
            raise
        raise StateCorrupt(f"undecodable state record: {error}") from None
    return record
