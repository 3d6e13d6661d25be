"""Jittered exponential backoff for re-dialling a peer.

Delay of attempt ``n`` (0-based) is drawn uniformly from ``[d/2, d]`` with
``d = min(maximum, initial * 2**n)`` ("equal jitter"): it grows fast enough that a dead peer
costs little, never exceeds ``maximum``, and the random half keeps a cluster that lost a peer
at the same instant from re-dialling it in lock-step. The random source is injected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from apps.node.p2p.errors import P2PConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    maximum: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise P2PConfigError("backoff needs 0 < initial <= maximum")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before attempt ``attempt``."""
        if attempt >= 64:  # 2**64 * initial is past any sane maximum; avoid huge floats
            return self.maximum
        return min(self.maximum, self.initial * 2.0 ** attempt)

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + rng.uniform(0, ceiling / 2)
