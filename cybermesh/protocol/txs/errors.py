"""The one exception of the transaction layer, with a reason enum for metrics and tests.

Every schema failure of every transaction kind maps to exactly one :class:`TxRejectReason`, so
the mempool can count admissions refused per reason and the DLQ can say why an event was
dropped. ``detail`` is for humans and never contains key material.
"""

from __future__ import annotations

import enum

__all__ = ["TxRejectReason", "TxRejected"]


class TxRejectReason(enum.Enum):
    """Why a transaction (or a value meant for one) was refused; stable names."""

    # Envelope and encoding.
    TOO_LARGE = "too_large"
    MALFORMED_ENCODING = "malformed_encoding"
    BAD_STRUCTURE = "bad_structure"  # not the expected array/map, missing or unknown field
    WRONG_TYPE = "wrong_type"  # a field of the wrong CBOR type
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KIND = "unknown_kind"
    BAD_CHAIN_ID = "bad_chain_id"
    WRONG_CHAIN = "wrong_chain"
    BAD_PRODUCER = "bad_producer"
    BAD_NONCE = "bad_nonce"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_PUBLIC_KEY = "bad_public_key"
    BAD_SIGNATURE = "bad_signature"  # wrong length, or does not verify
    # Shared field rules.
    BAD_TEXT = "bad_text"  # control characters, empty, or over its byte cap
    LIST_TOO_LONG = "list_too_long"
    EMPTY_LIST = "empty_list"
    NOT_CANONICAL_ORDER = "not_canonical_order"  # duplicates or unsorted set-like list
    BAD_HASH = "bad_hash"
    BAD_ENTITY = "bad_entity"
    # Security event.
    BAD_SOURCE = "bad_source"
    BAD_CATEGORY = "bad_category"
    BAD_SEVERITY = "bad_severity"
    BAD_CONFIDENCE = "bad_confidence"
    BAD_OBSERVED_TIME = "bad_observed_time"
    BAD_DETECTOR = "bad_detector"
    BAD_PAYLOAD_REF = "bad_payload_ref"
    # Evidence.
    BAD_EVIDENCE_KIND = "bad_evidence_kind"
    BAD_ARTIFACT = "bad_artifact"
    BAD_CUSTODY = "bad_custody"
    BAD_EQUIVOCATION = "bad_equivocation"
    # Policy.
    BAD_OPERATION = "bad_operation"
    BAD_SCOPE = "bad_scope"
    BAD_ACTION = "bad_action"
    BAD_EXPIRY = "bad_expiry"
    # Governance.
    BAD_VALIDATOR_ID = "bad_validator_id"
    BAD_EPOCH = "bad_epoch"
    BAD_POWER = "bad_power"
    BAD_ADDRESS = "bad_address"
    BAD_PARAMETER = "bad_parameter"
    BAD_APPROVALS = "bad_approvals"
    # Audit anchor.
    BAD_SEQUENCE = "bad_sequence"
    BAD_KEY_ID = "bad_key_id"


class TxRejected(ValueError):
    """A refused transaction: ``reason`` says which rule refused it, ``field`` where."""

    reason: TxRejectReason
    detail: str
    field: str

    def __init__(self, reason: TxRejectReason, detail: str, field: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.field = field
        where = f" ({field})" if field else ""
        super().__init__(f"{reason.value}{where}: {detail}")
