"""The consensus layer's exceptions: one error type per boundary, reasons as enum members."""

from __future__ import annotations

import enum


class MessageErrorReason(enum.Enum):
    """Why bytes from the network were refused before they reached the state machine."""

    EMPTY = "empty"
    UNKNOWN_KIND = "unknown_kind"
    TOO_LARGE = "too_large"
    MALFORMED_CBOR = "malformed_cbor"
    BAD_SHAPE = "bad_shape"
    BAD_FIELD = "bad_field"
    UNSORTED_SIGNERS = "unsorted_signers"
    DUPLICATE_SIGNER = "duplicate_signer"
    TOO_MANY_SIGNERS = "too_many_signers"


class MessageError(ValueError):
    """Untrusted bytes that do not decode to a well-formed consensus message."""

    def __init__(self, reason: MessageErrorReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


class CertificateErrorReason(enum.Enum):
    """Why a quorum or timeout certificate (or a single signed message) was refused."""

    WRONG_EPOCH = "wrong_epoch"
    UNKNOWN_SIGNER = "unknown_signer"
    DUPLICATE_SIGNER = "duplicate_signer"
    NO_QUORUM = "no_quorum"
    BAD_SIGNATURE = "bad_signature"
    BAD_GENESIS = "bad_genesis"


class CertificateError(ValueError):
    """A certificate or signed message that must not be trusted."""

    def __init__(self, reason: CertificateErrorReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


class SafetyRuleViolation(Exception):
    """SafetyRules refused to sign: signing would break one of the 2-chain safety rules."""

    def __init__(self, rule: object, detail: str) -> None:
        self.rule = rule
        self.detail = detail
        super().__init__(f"{rule}: {detail}")
