"""Evidence: artifacts that back security events, or proof that a validator equivocated.

Wire form (canonical CBOR map), by ``kind``::

    artifacts:    {"kind": "artifacts", "artifacts": [artifact, ...], "custody": [entry, ...],
                   "supports": [event_id, ...]}
    equivocation: {"kind": "equivocation", "equivocation": {...}}

    artifact  = {"sha256": bstr .size 32, "media_type": tok, "size_bytes": uint}
    entry     = {"actor": tok, "action": text, "at_ms": uint}
    equivocation = {"validator_id": tok, "type": "double_vote" | "double_proposal",
                    "epoch": uint, "view": uint, "first": statement, "second": statement}
    statement = [block_id: bstr .size 32, height: uint, signature: bstr .size 64]

Artifacts are named by content hash and listed in ascending hash order, supported event ids
(transaction ids of security events) likewise, so one evidence set has one encoding. The chain
of custody is in time order and ends no later than the transaction's creation.

Equivocation mirrors ``consensus.messages.Evidence``: two statements signed by one validator for
one (epoch, view) with different block ids, ordered by block id. The signatures are checked by
the block validator with the consensus verifier (``consensus.evidence.verify_evidence``) before a
replica votes for a block carrying it; the executor only applies verified evidence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.kinds import TxKind
from cybermesh.protocol.txs.schema import (
    HASH_LENGTH,
    MAX_NONCE,
    TOKEN_PATTERN,
    expect_bytes,
    expect_enum,
    expect_hash,
    expect_int,
    expect_list,
    expect_map,
    expect_sorted_unique,
    expect_text,
    expect_time_ms,
)

__all__ = [
    "MAX_ARTIFACTS",
    "MAX_CUSTODY_ENTRIES",
    "MAX_SUPPORTED_EVENTS",
    "Artifact",
    "CustodyAction",
    "CustodyEntry",
    "Equivocation",
    "EquivocationType",
    "Evidence",
    "EvidenceKind",
    "SignedStatement",
]

_R = TxRejectReason
MAX_ARTIFACTS = 64
MAX_CUSTODY_ENTRIES = 32
MAX_SUPPORTED_EVENTS = 64
MAX_TOKEN_BYTES = 64
MAX_ARTIFACT_BYTES = 1 << 40  # 1 TiB: a full packet capture, not more
MAX_HEIGHT = (1 << 63) - 1


class EvidenceKind(enum.StrEnum):
    ARTIFACTS = "artifacts"
    EQUIVOCATION = "equivocation"


class CustodyAction(enum.StrEnum):
    COLLECTED = "collected"
    TRANSFERRED = "transferred"
    ANALYZED = "analyzed"
    STORED = "stored"
    SEALED = "sealed"


class EquivocationType(enum.StrEnum):
    DOUBLE_VOTE = "double_vote"
    DOUBLE_PROPOSAL = "double_proposal"


@dataclass(frozen=True, slots=True)
class Artifact:
    sha256: bytes
    media_type: str
    size_bytes: int

    def __post_init__(self) -> None:
        expect_bytes(self.sha256, "artifacts.sha256", HASH_LENGTH, _R.BAD_ARTIFACT)
        expect_text(self.media_type, "artifacts.media_type", MAX_TOKEN_BYTES, _R.BAD_ARTIFACT,
                    TOKEN_PATTERN)
        expect_int(self.size_bytes, "artifacts.size_bytes", 0, MAX_ARTIFACT_BYTES,
                   _R.BAD_ARTIFACT)

    def to_cbor(self) -> CborValue:
        return {"sha256": self.sha256, "media_type": self.media_type,
                "size_bytes": self.size_bytes}

    @classmethod
    def from_cbor(cls, value: object) -> Artifact:
        fields = expect_map(value, "artifacts", ("sha256", "media_type", "size_bytes"))
        return cls(fields["sha256"], fields["media_type"],  # type: ignore[arg-type]
                   fields["size_bytes"])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class CustodyEntry:
    actor: str
    action: CustodyAction
    at_ms: int

    def __post_init__(self) -> None:
        expect_text(self.actor, "custody.actor", MAX_TOKEN_BYTES, _R.BAD_CUSTODY, TOKEN_PATTERN)
        if not isinstance(self.action, CustodyAction):
            object.__setattr__(self, "action", expect_enum(
                self.action, CustodyAction, "custody.action", _R.BAD_CUSTODY))
        expect_time_ms(self.at_ms, "custody.at_ms", _R.BAD_CUSTODY)

    def to_cbor(self) -> CborValue:
        return {"actor": self.actor, "action": self.action.value, "at_ms": self.at_ms}

    @classmethod
    def from_cbor(cls, value: object) -> CustodyEntry:
        fields = expect_map(value, "custody", ("actor", "action", "at_ms"))
        return cls(fields["actor"],  # type: ignore[arg-type]
                   expect_enum(fields["action"], CustodyAction, "custody.action",
                               _R.BAD_CUSTODY),
                   fields["at_ms"])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SignedStatement:
    """One signed ``[epoch, view, block_id, height]`` of the equivocating validator."""

    block_id: bytes
    height: int
    signature: bytes

    def __post_init__(self) -> None:
        expect_bytes(self.block_id, "equivocation.block_id", HASH_LENGTH, _R.BAD_EQUIVOCATION)
        expect_int(self.height, "equivocation.height", 0, MAX_HEIGHT, _R.BAD_EQUIVOCATION)
        expect_bytes(self.signature, "equivocation.signature", 64, _R.BAD_EQUIVOCATION)

    def to_cbor(self) -> CborValue:
        return [self.block_id, self.height, self.signature]

    @classmethod
    def from_cbor(cls, value: object) -> SignedStatement:
        items = expect_list(value, "equivocation.statement", 3, 3)
        return cls(items[0], items[1], items[2])  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Equivocation:
    validator_id: str
    type: EquivocationType
    epoch: int
    view: int
    first: SignedStatement
    second: SignedStatement

    def __post_init__(self) -> None:
        expect_text(self.validator_id, "equivocation.validator_id", MAX_TOKEN_BYTES,
                    _R.BAD_VALIDATOR_ID, TOKEN_PATTERN)
        if not isinstance(self.type, EquivocationType):
            object.__setattr__(self, "type", expect_enum(
                self.type, EquivocationType, "equivocation.type", _R.BAD_EQUIVOCATION))
        expect_int(self.epoch, "equivocation.epoch", 0, MAX_NONCE, _R.BAD_EQUIVOCATION)
        expect_int(self.view, "equivocation.view", 0, MAX_NONCE, _R.BAD_EQUIVOCATION)
        if not (type(self.first) is SignedStatement and type(self.second) is SignedStatement):
            raise TxRejected(_R.WRONG_TYPE, "statements must be SignedStatement",
                             "equivocation")
        if not self.first.block_id < self.second.block_id:
            raise TxRejected(_R.BAD_EQUIVOCATION, "statements must name two different blocks, "
                             "in ascending block id order", "equivocation")

    def to_cbor(self) -> CborValue:
        return {"validator_id": self.validator_id, "type": self.type.value,
                "epoch": self.epoch, "view": self.view,
                "first": self.first.to_cbor(), "second": self.second.to_cbor()}

    @classmethod
    def from_cbor(cls, value: object) -> Equivocation:
        fields = expect_map(value, "equivocation",
                            ("validator_id", "type", "epoch", "view", "first", "second"))
        return cls(
            validator_id=fields["validator_id"],  # type: ignore[arg-type]
            type=expect_enum(fields["type"], EquivocationType, "equivocation.type",
                             _R.BAD_EQUIVOCATION),
            epoch=fields["epoch"],  # type: ignore[arg-type]
            view=fields["view"],  # type: ignore[arg-type]
            first=SignedStatement.from_cbor(fields["first"]),
            second=SignedStatement.from_cbor(fields["second"]),
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """Artifacts backing security events, or a validator's equivocation."""

    KIND: ClassVar[TxKind] = TxKind.EVIDENCE

    kind: EvidenceKind
    artifacts: tuple[Artifact, ...] = ()
    custody: tuple[CustodyEntry, ...] = ()
    supports: tuple[bytes, ...] = ()
    equivocation: Equivocation | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.kind, EvidenceKind):
            object.__setattr__(self, "kind", expect_enum(
                self.kind, EvidenceKind, "kind", _R.BAD_EVIDENCE_KIND))
        if self.kind is EvidenceKind.EQUIVOCATION:
            if type(self.equivocation) is not Equivocation:
                raise TxRejected(_R.BAD_STRUCTURE, "equivocation evidence needs its proof",
                                 "equivocation")
            if self.artifacts or self.custody or self.supports:
                raise TxRejected(_R.BAD_STRUCTURE, "equivocation evidence carries only the "
                                 "proof", "payload")
            return
        if self.equivocation is not None:
            raise TxRejected(_R.BAD_STRUCTURE, "artifact evidence carries no equivocation",
                             "payload")
        self._check_list(self.artifacts, Artifact, "artifacts", MAX_ARTIFACTS)
        self._check_list(self.custody, CustodyEntry, "custody", MAX_CUSTODY_ENTRIES)
        self._check_list(self.supports, bytes, "supports", MAX_SUPPORTED_EVENTS)
        expect_sorted_unique([artifact.sha256 for artifact in self.artifacts], "artifacts")
        for event_id in self.supports:
            expect_hash(event_id, "supports")
        expect_sorted_unique(self.supports, "supports")
        for earlier, later in zip(self.custody, self.custody[1:], strict=False):
            if later.at_ms < earlier.at_ms:
                raise TxRejected(_R.BAD_CUSTODY, "custody entries must be in time order",
                                 "custody")

    @staticmethod
    def _check_list(items: object, item_type: type, field: str, max_items: int) -> None:
        if type(items) is not tuple:
            raise TxRejected(_R.WRONG_TYPE, "expected a tuple", field)
        expect_list(list(items), field, max_items, 1)
        for item in items:
            if type(item) is not item_type:
                raise TxRejected(_R.WRONG_TYPE, f"expected {item_type.__name__} items", field)

    def check_envelope(self, producer_id: str, created_at_ms: int) -> None:
        """Custody cannot end after the transaction reporting it was created."""
        if self.custody and self.custody[-1].at_ms > created_at_ms:
            raise TxRejected(_R.BAD_CUSTODY, "custody entry after the transaction's creation",
                             "custody")

    def to_cbor(self) -> CborValue:
        if self.equivocation is not None:
            return {"kind": self.kind.value, "equivocation": self.equivocation.to_cbor()}
        return {"kind": self.kind.value,
                "artifacts": [artifact.to_cbor() for artifact in self.artifacts],
                "custody": [entry.to_cbor() for entry in self.custody],
                "supports": list(self.supports)}

    @classmethod
    def from_cbor(cls, value: object) -> Evidence:
        if type(value) is not dict or "kind" not in value:
            raise TxRejected(_R.BAD_STRUCTURE, "expected a map with a kind", "payload")
        kind = expect_enum(value["kind"], EvidenceKind, "kind", _R.BAD_EVIDENCE_KIND)
        if kind is EvidenceKind.EQUIVOCATION:
            fields = expect_map(value, "payload", ("kind", "equivocation"))
            return cls(kind, equivocation=Equivocation.from_cbor(fields["equivocation"]))
        fields = expect_map(value, "payload", ("kind", "artifacts", "custody", "supports"))
        artifacts = expect_list(fields["artifacts"], "artifacts", MAX_ARTIFACTS, 1)
        custody = expect_list(fields["custody"], "custody", MAX_CUSTODY_ENTRIES, 1)
        supports = expect_list(fields["supports"], "supports", MAX_SUPPORTED_EVENTS, 1)
        return cls(
            kind,
            artifacts=tuple(Artifact.from_cbor(item) for item in artifacts),
            custody=tuple(CustodyEntry.from_cbor(item) for item in custody),
            supports=tuple(expect_hash(item, "supports") for item in supports),
        )
