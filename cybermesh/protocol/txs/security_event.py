"""Security event: an anomaly or alert about one offender, published by a detector.

Wire form (a canonical CBOR map with text keys)::

    {"source": tok, "offender": [kind, value], "category": text, "severity": 1..10,
     "confidence_bps": 0..10000, "observed_at_ms": int, "detector": tok, "payload_ref": text}

``payload_ref`` points at the full alert outside the ledger: either 64 lowercase hex digits (the
SHA-256 of the payload) or a URI (``scheme://...``, printable ASCII, at most 512 bytes). The
event's id is its transaction id.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.txs.entity import Entity
from cybermesh.protocol.txs.errors import TxRejected, TxRejectReason
from cybermesh.protocol.txs.kinds import TxKind
from cybermesh.protocol.txs.schema import (
    TOKEN_PATTERN,
    expect_enum,
    expect_int,
    expect_map,
    expect_text,
    expect_time_ms,
)

__all__ = [
    "MAX_CONFIDENCE_BPS",
    "MAX_SEVERITY",
    "Category",
    "SecurityEvent",
    "check_payload_ref",
]

_R = TxRejectReason
MAX_SEVERITY = 10
MAX_CONFIDENCE_BPS = 10_000
MAX_SOURCE_BYTES = 64
MAX_DETECTOR_BYTES = 64
MAX_PAYLOAD_REF_BYTES = 512
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_URI = re.compile(r"[a-z][a-z0-9+.-]{0,15}://[\x21-\x7e]+")
_FIELDS = ("source", "offender", "category", "severity", "confidence_bps", "observed_at_ms",
           "detector", "payload_ref")


class Category(enum.StrEnum):
    MALWARE = "malware"
    INTRUSION = "intrusion"
    SCAN = "scan"
    BRUTE_FORCE = "brute_force"
    DDOS = "ddos"
    EXFILTRATION = "exfiltration"
    PHISHING = "phishing"
    COMMAND_AND_CONTROL = "command_and_control"
    POLICY_VIOLATION = "policy_violation"
    ANOMALY = "anomaly"
    OTHER = "other"


def check_payload_ref(value: object, field: str = "payload_ref") -> str:
    """A SHA-256 hex digest or a bounded ``scheme://`` URI; raise ``BAD_PAYLOAD_REF``."""
    # Either pattern admits only printable ASCII (one byte a character, nothing forbidden by
    # expect_text), so a match within the size cap is valid; the rest is checked in full.
    if (type(value) is str and len(value) <= MAX_PAYLOAD_REF_BYTES
            and (_SHA256_HEX.fullmatch(value) is not None or _URI.fullmatch(value) is not None)):
        return value
    text = expect_text(value, field, MAX_PAYLOAD_REF_BYTES, _R.BAD_PAYLOAD_REF)
    if _SHA256_HEX.fullmatch(text) is None and _URI.fullmatch(text) is None:
        raise TxRejected(_R.BAD_PAYLOAD_REF,
                         "neither 64 lowercase hex digits nor a scheme:// URI", field)
    return text


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """An alert: ``offender`` did something of ``category`` seen by ``detector``."""

    KIND: ClassVar[TxKind] = TxKind.SECURITY_EVENT

    source: str
    offender: Entity
    category: Category
    severity: int
    confidence_bps: int
    observed_at_ms: int
    detector: str
    payload_ref: str

    def __post_init__(self) -> None:
        expect_text(self.source, "source", MAX_SOURCE_BYTES, _R.BAD_SOURCE, TOKEN_PATTERN)
        if type(self.offender) is not Entity:
            raise TxRejected(_R.WRONG_TYPE, "offender must be an Entity", "offender")
        if not isinstance(self.category, Category):
            expect_enum(self.category, Category, "category", _R.BAD_CATEGORY)
            object.__setattr__(self, "category", Category(self.category))
        expect_int(self.severity, "severity", 1, MAX_SEVERITY, _R.BAD_SEVERITY)
        expect_int(self.confidence_bps, "confidence_bps", 0, MAX_CONFIDENCE_BPS,
                   _R.BAD_CONFIDENCE)
        expect_time_ms(self.observed_at_ms, "observed_at_ms", _R.BAD_OBSERVED_TIME)
        expect_text(self.detector, "detector", MAX_DETECTOR_BYTES, _R.BAD_DETECTOR,
                    TOKEN_PATTERN)
        check_payload_ref(self.payload_ref)

    def check_envelope(self, producer_id: str, created_at_ms: int) -> None:
        """An event cannot be observed after the transaction reporting it was created."""
        if self.observed_at_ms > created_at_ms:
            raise TxRejected(_R.BAD_OBSERVED_TIME, "observed after the transaction was created",
                             "observed_at_ms")

    def to_cbor(self) -> CborValue:
        return {
            "source": self.source,
            "offender": self.offender.to_cbor(),
            "category": self.category.value,
            "severity": self.severity,
            "confidence_bps": self.confidence_bps,
            "observed_at_ms": self.observed_at_ms,
            "detector": self.detector,
            "payload_ref": self.payload_ref,
        }

    @classmethod
    def from_cbor(cls, value: object) -> SecurityEvent:
        fields = expect_map(value, "payload", _FIELDS)
        return cls(
            source=fields["source"],  # type: ignore[arg-type]  # checked in __post_init__
            offender=Entity.from_cbor(fields["offender"], "offender"),
            category=expect_enum(fields["category"], Category, "category", _R.BAD_CATEGORY),
            severity=fields["severity"],  # type: ignore[arg-type]
            confidence_bps=fields["confidence_bps"],  # type: ignore[arg-type]
            observed_at_ms=fields["observed_at_ms"],  # type: ignore[arg-type]
            detector=fields["detector"],  # type: ignore[arg-type]
            payload_ref=fields["payload_ref"],  # type: ignore[arg-type]
        )
