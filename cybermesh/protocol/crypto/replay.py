"""Replay protection for signed envelopes: (producer, nonce) seen once inside a time window.

Time is an argument: ``created_at`` and ``now`` are integer unix timestamps in **seconds**, the
same unit as ``window_seconds`` (the envelope's own millisecond field, if any, is converted by
the caller with ``// 1000``). The cache never reads a clock.

The invariant that makes it safe with bounded memory: there is a *floor* timestamp, which only
rises, and every (producer, nonce) ever accepted with ``created_at > floor`` is still remembered.
Anything at or below the floor is refused as TOO_OLD, so forgetting an entry never reopens a
replay. The floor rises with time (``now - window_seconds - 1``) and, when the cache is full,
to the ``created_at`` of the oldest entry evicted to make room. Under a flood, the effective
window therefore shrinks (more envelopes are refused as TOO_OLD) rather than letting a replay
through; per-producer rate limits sit in front of this cache.
"""

from __future__ import annotations

import enum
import heapq
import itertools

__all__ = ["MAX_NONCE_BYTES", "ReplayCache", "ReplayVerdict", "check_skew"]

MAX_NONCE_BYTES = 64
DEFAULT_MAX_FUTURE_SKEW_SECONDS = 30


class ReplayVerdict(enum.Enum):
    FRESH = "fresh"
    REPLAYED = "replayed"
    TOO_OLD = "too_old"
    FROM_FUTURE = "from_future"


def check_skew(created_at: int, now: int, max_skew: int) -> ReplayVerdict:
    """FRESH when ``|created_at - now| <= max_skew``, else TOO_OLD or FROM_FUTURE.

    All three integers share one unit (seconds or milliseconds: the caller chooses).
    """
    if created_at > now + max_skew:
        return ReplayVerdict.FROM_FUTURE
    if created_at < now - max_skew:
        return ReplayVerdict.TOO_OLD
    return ReplayVerdict.FRESH


class ReplayCache:
    """Remembers (producer_id, nonce) pairs for ``window_seconds``, at most ``max_entries``."""

    __slots__ = ("_by_age", "_counter", "_floor", "_seen", "max_entries",
                 "max_future_skew_seconds", "window_seconds")

    def __init__(self, window_seconds: int, max_entries: int, *,
                 max_future_skew_seconds: int = DEFAULT_MAX_FUTURE_SKEW_SECONDS) -> None:
        if window_seconds < 1 or max_entries < 1 or max_future_skew_seconds < 0:
            raise ValueError("ReplayCache needs window_seconds >= 1, max_entries >= 1 and "
                             "max_future_skew_seconds >= 0")
        self.window_seconds = window_seconds
        self.max_entries = max_entries
        self.max_future_skew_seconds = max_future_skew_seconds
        self._seen: set[tuple[str, bytes]] = set()
        # Min-heap of (created_at, insertion counter, key): the counter breaks ties without
        # comparing keys and keeps eviction order deterministic.
        self._by_age: list[tuple[int, int, tuple[str, bytes]]] = []
        self._counter = itertools.count()
        self._floor: int | None = None

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def floor(self) -> int | None:
        """Highest ``created_at`` refused as TOO_OLD (None before the first call)."""
        return self._floor

    def check_and_remember(self, producer_id: str, nonce: bytes, created_at: int,
                           now: int) -> ReplayVerdict:
        """Classify one envelope and remember it when FRESH.

        FROM_FUTURE: ``created_at > now + max_future_skew_seconds``; TOO_OLD: at or below the
        floor (at least everything older than ``now - window_seconds``); REPLAYED: this
        producer already used this nonce inside the window; FRESH otherwise.
        """
        if type(nonce) is not bytes or len(nonce) > MAX_NONCE_BYTES:
            raise ValueError(f"nonce must be bytes of at most {MAX_NONCE_BYTES} bytes")
        self._raise_floor(now - self.window_seconds - 1)
        if created_at > now + self.max_future_skew_seconds:
            return ReplayVerdict.FROM_FUTURE
        floor = self._floor
        if floor is not None and created_at <= floor:
            return ReplayVerdict.TOO_OLD
        key = (producer_id, nonce)
        if key in self._seen:
            return ReplayVerdict.REPLAYED
        if len(self._seen) >= self.max_entries:
            oldest_created_at = self._by_age[0][0]
            if created_at <= oldest_created_at:
                # Older than everything kept in a full cache: making room would evict a
                # younger entry and lift the floor above this envelope anyway.
                return ReplayVerdict.TOO_OLD
            self._raise_floor(oldest_created_at)
        self._seen.add(key)
        heapq.heappush(self._by_age, (created_at, next(self._counter), key))
        return ReplayVerdict.FRESH

    def _raise_floor(self, candidate: int) -> None:
        if self._floor is not None and candidate <= self._floor:
            return
        self._floor = candidate
        by_age, seen = self._by_age, self._seen
        while by_age and by_age[0][0] <= candidate:
            seen.discard(heapq.heappop(by_age)[2])
