"""Enumerations stored in mempool rows."""

from __future__ import annotations

from django.db import models

__all__ = ["RemovalReason"]


class RemovalReason(models.TextChoices):
    """Why an admitted transaction left the mempool without a block (the DLQ reason)."""

    # Displaced from a full pool by a higher-priority newcomer; may be admitted again later.
    EVICTED = "evicted", "evicted by a higher-priority transaction"
    # Its TTL passed: older than any block may carry, so re-driving it cannot help.
    EXPIRED = "expired", "expired (TTL passed)"

    @property
    def retryable(self) -> bool:
        return self is RemovalReason.EVICTED
