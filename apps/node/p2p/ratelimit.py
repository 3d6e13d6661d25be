"""Token buckets per (peer, topic), and reply credits that keep catch-up from being starved.

Each (peer, topic) has a bucket of ``burst`` frames refilled at ``frames_per_second``; a frame
that finds the bucket empty is dropped and counts as a flood.

The catch-up rule: a frame that answers a request *we* sent is not subject to the flood limit.
When the runtime sends a request with ``expect_reply=True`` the peer gets one reply credit on
that topic (at most ``max_credits`` outstanding); the next frame from that peer on that topic
spends a credit instead of a token. Replies are still bounded by the topic's size cap, and by
us: a peer can only be exempt for as many frames as we asked it for. Unsolicited frames
(including a peer's requests to us) always go through the bucket, so an isolated node
rejoining can pull blocks as fast as its peers serve them while nobody can push floods at it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from apps.node.p2p.errors import P2PConfigError
from apps.node.p2p.framing import Topic


@dataclass(frozen=True, slots=True)
class RateLimit:
    frames_per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.frames_per_second <= 0 or self.burst < 1:
            raise P2PConfigError("rate limit needs frames_per_second > 0 and burst >= 1")


class TokenBucket:
    """Classic token bucket on an injected clock; starts full."""

    __slots__ = ("_clock", "_limit", "_tokens", "_updated_at")

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens = limit.burst
        self._updated_at = clock()

    def take(self) -> bool:
        now = self._clock()
        elapsed = now - self._updated_at
        if elapsed > 0:
            self._tokens = min(self._limit.burst,
                               self._tokens + elapsed * self._limit.frames_per_second)
            self._updated_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


class Admission(enum.Enum):
    ALLOWED = "allowed"
    REPLY = "reply"        # spent a reply credit: exempt from the bucket
    LIMITED = "limited"    # bucket empty: drop, count a flood


class RateLimiter:
    """Buckets and reply credits for every (peer, topic) pair seen."""

    def __init__(self, limits: dict[Topic, RateLimit], clock: Callable[[], float], *,
                 max_credits: int = 64) -> None:
        self._limits = limits
        self._clock = clock
        self._max_credits = max_credits
        self._buckets: dict[tuple[str, Topic], TokenBucket] = {}
        self._credits: dict[tuple[str, Topic], int] = {}

    def admit(self, peer_id: str, topic: Topic) -> Admission:
        key = (peer_id, topic)
        credits = self._credits.get(key, 0)
        if credits > 0:
            self._credits[key] = credits - 1
            return Admission.REPLY
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._limits[topic], self._clock)
        return Admission.ALLOWED if bucket.take() else Admission.LIMITED

    def expect_reply(self, peer_id: str, topic: Topic) -> None:
        """We sent ``peer_id`` a request on ``topic``: let one reply past the bucket."""
        key = (peer_id, topic)
        self._credits[key] = min(self._max_credits, self._credits.get(key, 0) + 1)

    def credits(self, peer_id: str, topic: Topic) -> int:
        return self._credits.get((peer_id, topic), 0)

    def forget(self, peer_id: str) -> None:
        """Drop a peer's buckets and credits (it left the validator set).

        Credits survive a reconnect on purpose: the peer answers on whichever link is up.
        """
        self._credits = {key: n for key, n in self._credits.items() if key[0] != peer_id}
        self._buckets = {key: b for key, b in self._buckets.items() if key[0] != peer_id}
