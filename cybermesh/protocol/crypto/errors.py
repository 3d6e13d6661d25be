"""The crypto layer's one exception, with a reason for metrics and tests.

Messages name what was wrong (a length, a key id) and never include key material.
"""

from __future__ import annotations

import enum

__all__ = ["CryptoError", "CryptoErrorReason"]


class CryptoErrorReason(enum.Enum):
    BAD_KEY = "bad_key"
    BAD_KEY_LENGTH = "bad_key_length"
    SMALL_ORDER_KEY = "small_order_key"
    MIXED_ORDER_KEY = "mixed_order_key"
    NON_CANONICAL_KEY = "non_canonical_key"
    BAD_SEED_LENGTH = "bad_seed_length"
    BAD_SIGNATURE_LENGTH = "bad_signature_length"
    BAD_DOMAIN = "bad_domain"
    BAD_NONCE_LENGTH = "bad_nonce_length"
    UNKNOWN_KEY_ID = "unknown_key_id"
    DECRYPTION_FAILED = "decryption_failed"
    BAD_SEALED_BOX = "bad_sealed_box"


class CryptoError(Exception):
    """A key, signature, domain or sealed box was refused."""

    reason: CryptoErrorReason
    detail: str

    def __init__(self, reason: CryptoErrorReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")
