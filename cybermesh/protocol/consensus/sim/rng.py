"""SimRng: a small, explicit, integer-only PRNG (SplitMix64) for the simulator.

The simulator cannot use the ``random`` module (the protocol package is deterministic by rule),
and it does not need to: SplitMix64 is a few integer operations, passes BigCrush, and produces
the same stream on every platform and Python version, so a seed printed today replays forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

_MASK = (1 << 64) - 1
T = TypeVar("T")


class SimRng:
    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next64(self) -> int:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, bound: int) -> int:
        """Uniform integer in [0, bound) (bound >= 1); modulo bias is negligible at 64 bits."""
        return self.next64() % bound

    def between(self, low: int, high: int) -> int:
        """Uniform integer in [low, high]."""
        return low + self.below(high - low + 1)

    def chance(self, per_mille: int) -> bool:
        return self.below(1000) < per_mille

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def shuffle(self, items: list[T]) -> None:
        for index in range(len(items) - 1, 0, -1):
            other = self.below(index + 1)
            items[index], items[other] = items[other], items[index]

    def bytes(self, length: int) -> bytes:
        out = bytearray()
        while len(out) < length:
            out += self.next64().to_bytes(8, "little")
        return bytes(out[:length])

    def fork(self, label: int) -> SimRng:
        """An independent stream derived from this one and ``label``."""
        return SimRng(self.next64() ^ (label * 0xD1B54A32D192ED03 & _MASK))
