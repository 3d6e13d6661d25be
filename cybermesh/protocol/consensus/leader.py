"""Leader rotation: weighted round robin with a reputation gate, from committed data only.

Base schedule: the smooth weighted round robin (nginx's algorithm) over the epoch's validators
in id order, reduced by the gcd of the powers. Its cycle has length sum(power)/gcd and gives each
validator slots in proportion to its power, spread out evenly; ``base_leader(view)`` is
``cycle[view % len(cycle)]``.

Reputation gate: a committed block at view v whose parent (same epoch) is at view p proves that
the views p+1 .. v-1 produced no certified block on the committed chain; the fewest leaders that
explain those missed views (:func:`blamed_views`) are recorded as failed. For view v the base
leader is skipped when it failed at some view in [v - lag - window, v - lag), or is quarantined
by the application; the next base slot (v+1, v+2, ...) whose validator is not skipped leads
instead. If every validator would be skipped, or the skipped ones would hold more than f power,
the base leader stands (the gate may only cost liveness to at most f power, never stop the
chain).

The same failures mark a view *suspect* (:meth:`ReputationLeaderElection.suspect`): a short
local timer, and no timeout increase, for a view whose leader or vote collector failed lately.

Only committed data feeds the gate, and the ``lag`` (default 2 * window) lets a failure be known
to every honest node, which commit the same prefix, well before it changes anyone's schedule; a
node that lags further behind may briefly disagree on a leader, which costs a timeout, never
safety (a proposal is voted on only if it is safe on its own).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from math import gcd
from typing import Protocol

from cybermesh.protocol.validator_set import ValidatorSet


def blamed_views(parent_view: int, view: int) -> list[int]:
    """The missed views between a committed parent and its committed child whose leaders failed.

    A missed view u failed because its leader proposed nothing, or because the leader of u + 1,
    the only node the votes of u go to, formed no QC. The leader of ``view`` proposed the child,
    so it was running. The fewest leaders that explain every missed view are blamed, walking
    from the left: an unexplained view u blames the leader of u + 1 (which explains u + 1 too),
    except the last missed view, which can only blame its own leader. With one crashed
    validator D leading view u, the gap is {u - 1, u} and only D is blamed, not the live leader
    of u - 1 whose block lost its votes to D; blaming both put more than f validators in the
    gate in a 4-validator set, which then switched itself off and D kept its slots.
    """
    blamed: list[int] = []
    for missed in range(parent_view + 1, view):
        if blamed and blamed[-1] >= missed:
            continue
        blamed.append(missed + 1 if missed + 1 < view else missed)
    return blamed


class CommittedView(Protocol):
    """What the schedule learns from a committed block (a :class:`Block` is one)."""

    @property
    def epoch(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def view(self) -> int: ...

    @property
    def timestamp_ms(self) -> int: ...

    @property
    def proposer(self) -> str: ...


# How long a failure keeps a leader out at most, by the committing block's timestamp against
# the node's clock. The windows are counted in views, and an idle chain turns a view only every
# few seconds (MAX_HEARTBEATS_PER_VIEW): a restarted validator, whose own transactions only it
# can propose, was kept out for minutes (kill -9 cluster test). Under load the view windows
# end first. Nodes read the same block timestamps; clocks within the allowed skew may disagree
# on the expiry for a moment, which costs a view, never safety.
GATE_MEMORY_MS = 10_000


def history_depth(window: int) -> int:
    """How many committed blocks rebuild the gate's memory (the default lag): failures are
    kept for ``2 * (window + lag)`` views, and every block is at least one view."""
    return 2 * (window + 2 * window) + 1


class LeaderSchedule(Protocol):
    def leader(self, view: int) -> str: ...

    def suspect(self, view: int) -> bool: ...

    def record_committed(self, parent_view: int | None, view: int, timestamp_ms: int = 0,
                         proposer: str = "") -> None: ...


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
                 lag: int | None = None, max_cycle: int = 100_000,
                 memory_ms: int = GATE_MEMORY_MS, clock: Callable[[], int] | None = None
                 ) -> None:
        self._set = validator_set
        self._cycle = weighted_round_robin(validator_set)[:max_cycle]
        self._window = window
        self._lag = 2 * window if lag is None else lag
        self._memory_ms = memory_ms
        self._clock = clock
        # (failed view, leader blamed, timestamp of the committed block that showed it)
        self._failures: deque[tuple[int, str, int]] = deque()
        # Validators whose last outcome as a leader was a failure (no committed block of theirs
        # since): the suspects (``suspect``).
        self._failing: set[str] = set()
        self._quarantined: frozenset[str] = frozenset()
        self._memo: dict[int, str] = {}

    def base_leader(self, view: int) -> str:
        return self._cycle[view % len(self._cycle)]

    def set_quarantined(self, validator_ids: frozenset[str]) -> None:
        """Validators the application quarantined, from committed state."""
        self._quarantined = frozenset(validator_ids)
        self._memo.clear()

    def record_committed(self, parent_view: int | None, view: int, timestamp_ms: int = 0,
                         proposer: str = "") -> None:
        """Learn failed views from one newly committed block at ``view`` (in commit order),
        and that its ``proposer`` led successfully."""
        self._failing.discard(proposer)
        if parent_view is None:
            return
        first = max(parent_view + 1, view - self._window - self._lag)
        # Leaders resolved with the schedule as it stood while those views ran (memo kept).
        failed = [(missed, self.leader(missed), timestamp_ms)
                  for missed in blamed_views(first - 1, view)]
        self._memo.clear()
        self._failures.extend(failed)
        self._failing.update(who for _, who, _ in failed)
        horizon = view - 2 * (self._window + self._lag)
        while self._failures and self._failures[0][0] < horizon:
            self._failures.popleft()

    def _remembered(self, low: int, high: int) -> set[str]:
        """Leaders blamed for a view in ``[low, high)`` less than ``memory_ms`` ago."""
        since = -1 if self._clock is None else self._clock() - self._memory_ms
        return {who for failed_view, who, at_ms in self._failures
                if low <= failed_view < high and at_ms > since}

    def _skipped(self, view: int) -> set[str]:
        skipped = self._remembered(view - self._lag - self._window, view - self._lag)
        skipped |= self._quarantined
        if self._set.power_of(skipped) > self._set.quorum.max_faulty_power:
            return set()
        return skipped

    def suspect(self, view: int) -> bool:
        """Whether ``view`` will likely fail: its leader, or the next view's (the only node its
        votes go to), failed as a leader and has not had a block committed since.

        Local (no lag): it only shortens this node's timer for the view and keeps the failure
        from raising its timeout (pacemaker.py), it changes no one's schedule, so nodes need
        not agree on it. It outlives the gate's memory on purpose: a crashed validator comes
        back into the schedule when the gate forgets it, and its slot must still fail fast
        and not ratchet every timeout up. Like the gate it covers at most f power: if more are
        failing, the network itself is slow, and every view keeps the full timeout.
        """
        failing = self._failing
        if not failing or self._set.power_of(failing) > self._set.quorum.max_faulty_power:
            return False
        return self.leader(view) in failing or self.leader(view + 1) in failing

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

    def suspect(self, view: int) -> bool:
        return False

    def record_committed(self, parent_view: int | None, view: int, timestamp_ms: int = 0,
                         proposer: str = "") -> None:
        return None
