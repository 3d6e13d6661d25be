"""Per-producer token buckets, in integer milli-tokens so every step is exact.

A producer with ``rate_per_second`` r and ``burst`` b holds at most ``b`` tokens, gains ``r``
tokens per second of (injected) time, and spends one per transaction that reaches the
rate-limit step. Stored as ``tokens_milli`` (thousandths of a token): ``r`` tokens per second
is exactly ``r`` milli-tokens per millisecond, so no fraction is ever rounded away.

The bucket lives in the database (``RateBucket``), read and written in the admission
transaction, so the limit holds across restarts and across several admitting processes. A
clock that steps backwards refills nothing until it passes the last refill time again.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MILLI_TOKENS", "Bucket", "refill", "take"]

MILLI_TOKENS = 1000


@dataclass(frozen=True, slots=True)
class Bucket:
    tokens_milli: int
    refilled_at_ms: int


def refill(bucket: Bucket | None, *, now_ms: int, rate_per_second: int, burst: int) -> Bucket:
    """The bucket at ``now_ms``; a producer seen for the first time starts full."""
    capacity = burst * MILLI_TOKENS
    if bucket is None:
        return Bucket(capacity, now_ms)
    elapsed_ms = max(0, now_ms - bucket.refilled_at_ms)
    tokens = min(capacity, bucket.tokens_milli + elapsed_ms * rate_per_second)
    return Bucket(tokens, max(now_ms, bucket.refilled_at_ms))


def take(bucket: Bucket) -> Bucket | None:
    """The bucket after spending one token, or None if less than one token is left."""
    if bucket.tokens_milli < MILLI_TOKENS:
        return None
    return Bucket(bucket.tokens_milli - MILLI_TOKENS, bucket.refilled_at_ms)
