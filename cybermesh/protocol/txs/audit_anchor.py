"""Audit anchor: a validator commits the head of its own audit log to the ledger.

Wire form (canonical CBOR map)::

    {"validator_id": tok, "audit_seq": uint, "head_hash": bstr .size 32, "hmac_key_id": tok}

The node signs the transaction with its validator key (the executor checks that the envelope's
public key is the key registered for ``validator_id``, and that ``audit_seq`` only grows). With
the head hash of a hash-chained, HMAC'd audit log on the ledger, anyone can later detect that a
node's audit log was rewritten: the recomputed head at ``audit_seq`` no longer matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.kinds import TxKind
from cybermesh.protocol.txs.schema import (
    TOKEN_PATTERN,
    expect_hash,
    expect_int,
    expect_map,
    expect_text,
)

__all__ = ["MAX_AUDIT_SEQ", "AuditAnchor"]

_R = TxRejectReason
MAX_AUDIT_SEQ = (1 << 63) - 1
MAX_ID_BYTES = 64
_FIELDS = ("validator_id", "audit_seq", "head_hash", "hmac_key_id")


@dataclass(frozen=True, slots=True)
class AuditAnchor:
    """Validator ``validator_id``'s audit log had head ``head_hash`` at entry ``audit_seq``."""

    KIND: ClassVar[TxKind] = TxKind.AUDIT_ANCHOR

    validator_id: str
    audit_seq: int
    head_hash: bytes
    hmac_key_id: str

    def __post_init__(self) -> None:
        expect_text(self.validator_id, "validator_id", MAX_ID_BYTES, _R.BAD_VALIDATOR_ID,
                    TOKEN_PATTERN)
        expect_int(self.audit_seq, "audit_seq", 0, MAX_AUDIT_SEQ, _R.BAD_SEQUENCE)
        expect_hash(self.head_hash, "head_hash")
        expect_text(self.hmac_key_id, "hmac_key_id", MAX_ID_BYTES, _R.BAD_KEY_ID,
                    TOKEN_PATTERN)

    def check_envelope(self, producer_id: str, created_at_ms: int) -> None:
        """A node anchors only its own log: the producer is the validator."""
        if producer_id != self.validator_id:
            raise TxRejected(_R.BAD_VALIDATOR_ID, "an audit anchor is produced by the "
                             "validator it anchors", "validator_id")

    def to_cbor(self) -> CborValue:
        return {"validator_id": self.validator_id, "audit_seq": self.audit_seq,
                "head_hash": self.head_hash, "hmac_key_id": self.hmac_key_id}

    @classmethod
    def from_cbor(cls, value: object) -> AuditAnchor:
        fields = expect_map(value, "payload", _FIELDS)
        return cls(fields["validator_id"], fields["audit_seq"],  # type: ignore[arg-type]
                   fields["head_hash"], fields["hmac_key_id"])  # type: ignore[arg-type]
