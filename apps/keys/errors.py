"""The at-rest encryption layer's one exception, with a reason for metrics and tests.

Messages are one line that name the row id, purpose and key id concerned; never a key, a
nonce, ciphertext or plaintext.
"""

from __future__ import annotations

import enum
import uuid

__all__ = ["SealedPayloadError", "SealedPayloadProblem"]


class SealedPayloadProblem(enum.Enum):
    INVALID_INPUT = "invalid_input"
    KEYS_UNAVAILABLE = "keys_unavailable"
    UNKNOWN_KEY_ID = "unknown_key_id"
    AUTHENTICATION_FAILED = "authentication_failed"
    MALFORMED = "malformed"
    PURPOSE_MISMATCH = "purpose_mismatch"
    CONTEXT_MISMATCH = "context_mismatch"


class SealedPayloadError(Exception):
    """A payload could not be sealed, opened or re-encrypted."""

    def __init__(self, problem: SealedPayloadProblem, message: str, *,
                 payload_id: uuid.UUID | None = None, key_id: str | None = None) -> None:
        self.problem = problem
        self.payload_id = payload_id
        self.key_id = key_id
        super().__init__(message)
