"""The hash-chain rules of the audit log: what is hashed, what is MACed, in which encoding.

An entry's hash is SHA-256 over the canonical CBOR (``cybermesh.protocol.codec.encode``) of a
map holding every audited field *and the previous entry's hash*, under a versioned domain tag.
Changing any field of any entry changes its hash; the next entry still names the old hash, so
the edit breaks the link; re-hashing forward from the edit would need the HMAC key for every
following entry. The HMAC covers the entry hash and the key id (so a row cannot be re-labelled
with another key's id), under its own domain tag so an entry MAC is never a valid head MAC.

These functions are pure: the appender and the verifier call the same ones, so the two can
never disagree about the encoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from cybermesh.protocol.codec import CborValue, encode

GENESIS_HASH = bytes(32)  # the "previous hash" of entry 1
ENTRY_DOMAIN = "cybermesh/audit/entry/v1"
ENTRY_MAC_DOMAIN = "cybermesh/audit/entry-mac/v1"
HEAD_MAC_DOMAIN = "cybermesh/audit/head-mac/v1"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def timestamp_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float on the way)."""
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True, slots=True)
class EntryContent:
    """Everything an entry's hash covers."""

    seq: int
    timestamp: datetime
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str
    details: dict[str, Any]
    prev_hash: bytes

    def canonical_bytes(self) -> bytes:
        return encode({
            "domain": ENTRY_DOMAIN,
            "seq": self.seq,
            "timestamp_us": timestamp_micros(self.timestamp),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "request_id": self.request_id,
            "details": cast(CborValue, self.details),
            "prev_hash": self.prev_hash,
        })

    def entry_hash(self) -> bytes:
        return hashlib.sha256(self.canonical_bytes()).digest()


def entry_mac_message(*, key_id: str, entry_hash: bytes) -> bytes:
    return encode({"domain": ENTRY_MAC_DOMAIN, "key_id": key_id, "entry_hash": entry_hash})


def head_mac_message(*, key_id: str, seq: int, entry_hash: bytes, signed_at: datetime) -> bytes:
    return encode({"domain": HEAD_MAC_DOMAIN, "key_id": key_id, "seq": seq,
                   "entry_hash": entry_hash, "signed_at_us": timestamp_micros(signed_at)})
