"""Transaction kinds and the protocol version of their schemas."""

from __future__ import annotations

import enum

__all__ = ["TX_VERSION", "TxKind"]

TX_VERSION = 1
"""The one schema version this code reads and writes; others are refused, never guessed."""


class TxKind(enum.StrEnum):
    """What a transaction is; also the signature domain kind (``tx/<kind>``)."""

    SECURITY_EVENT = "security_event"
    EVIDENCE = "evidence"
    POLICY = "policy"
    GOVERNANCE = "governance"
    AUDIT_ANCHOR = "audit_anchor"

    @property
    def domain_kind(self) -> str:
        return f"tx/{self.value}"
