"""Leader rotation: weighted round robin with a reputation gate, from committed data only.

Base schedule: the smooth weighted round robin (nginx's algorithm) over the epoch's validators
in id order, reduced by the gcd of the powers. Its cycle has length sum(power)/gcd and gives each
validator slots in proportion to its power, spread out evenly; ``base_leader(view)`` is
``cycle[view % len(cycle)]``.

Reputation gate: a committed block at view v whose parent (same epoch) is at view p proves that
the views p+1 .. v-1 produced no certified block on the committed chain; the base leader of each
such view is recorded as failed at that view. For view v the base leader is skipped when it
failed at some view in [v - lag - window, v - lag), or is quarantined by the application; the
next base slot (v+1, v+2, ...) whose validator is not skipped leads instead. If every validator
would be skipped, or the skipped ones would hold more than f power, the base leader stands
(the gate may only cost liveness to at most f power, never stop the chain).

Only committed data feeds the gate, and the ``lag`` (default 2 * window) lets a failure be known
to every honest node, which commit the same prefix, well before it changes anyone's schedule; a
node that lags further behind may briefly disagree on a leader, which costs a timeout, never
safety (a proposal is voted on only if it is safe on its own).
"""

from __future__ import annotations

from collections import deque
from math import gcd
from typing import Protocol

from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.validator_set import ValidatorSet


class LeaderSchedule(Protocol):
    def leader(self, view: int) -> str: ...

    def record_committed(self, parent_view: int | None, block: Block) -> None: ...


def weighted_round_robin(validator_set: ValidatorSet) -> tuple[str, ...]:
    """One full cycle of smooth weighted round robin over the set (deterministic)."""
    divisor = 0
    for validator in validator_set:
        divisor = gcd(divisor, validator.power)
    weights = [(v.validator_id, v.power // divisor) for v in validator_set]
    total = sum(w for _, w in weights)
    current = dict.fromkeys((vid for vid, _ in weights), 0)
    cycle = []
    for _ in range(total):
        for vid, weight in weights:
            current[vid] += weight
        chosen = max(weights, key=lambda item: (current[item[0]], -weights.index(item)))[0]
        current[chosen] -= total
        cycle.append(chosen)
    return tuple(cycle)


class ReputationLeaderElection:
    """The production :class:`LeaderSchedule` (see the module docstring for the rule)."""

    def __init__(self, validator_set: ValidatorSet, *, window: int = 10,
                 lag: int | None = None, max_cycle: int = 100_000) -> None:
        self._set = validator_set
        self._cycle = weighted_round_robin(validator_set)[:max_cycle]
        self._window = window
        self._lag = 2 * window if lag is None else lag
        self._failures: deque[tuple[int, str]] = deque()
        self._quarantined: frozenset[str] = frozenset()
        self._memo: dict[int, str] = {}

    def base_leader(self, view: int) -> str:
        return self._cycle[view % len(self._cycle)]

    def set_quarantined(self, validator_ids: frozenset[str]) -> None:
        """Validators the application quarantined, from committed state."""
        self._quarantined = frozenset(validator_ids)
        self._memo.clear()

    def record_committed(self, parent_view: int | None, block: Block) -> None:
        """Learn failed views from one newly committed block (in commit order)."""
        if parent_view is None:
            return
        self._memo.clear()
        for failed_view in range(max(parent_view + 1, block.view - self._window - self._lag),
                                 block.view):
            self._failures.append((failed_view, self.base_leader(failed_view)))
        horizon = block.view - 2 * (self._window + self._lag)
        while self._failures and self._failures[0][0] < horizon:
            self._failures.popleft()

    def _skipped(self, view: int) -> set[str]:
        low, high = view - self._lag - self._window, view - self._lag
        skipped = {who for failed_view, who in self._failures if low <= failed_view < high}
        skipped |= self._quarantined
        if self._set.power_of(skipped) > self._set.quorum.max_faulty_power:
            return set()
        return skipped

    def leader(self, view: int) -> str:
        chosen = self._memo.get(view)
        if chosen is None:
            chosen = self._choose(view)
            if len(self._memo) > 1024:
                self._memo.clear()
            self._memo[view] = chosen
        return chosen

    def _choose(self, view: int) -> str:
        skipped = self._skipped(view) if (self._failures or self._quarantined) else set()
        if not skipped:
            return self.base_leader(view)
        for offset in range(len(self._cycle)):
            candidate = self.base_leader(view + offset)
            if candidate not in skipped:
                return candidate
        return self.base_leader(view)


class FixedLeaderSchedule:
    """A scripted schedule (Twins scenarios): ``leaders[view]`` or round robin beyond it."""

    def __init__(self, leaders: dict[int, str], fallback: tuple[str, ...]) -> None:
        self._leaders = dict(leaders)
        self._fallback = fallback

    def leader(self, view: int) -> str:
        return self._leaders.get(view, self._fallback[view % len(self._fallback)])

    def record_committed(self, parent_view: int | None, block: Block) -> None:
        return None
