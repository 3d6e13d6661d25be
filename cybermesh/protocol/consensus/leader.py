"""Leader rotation: weighted round robin with a reputation gate, from committed data only.

Base schedule: the smooth weighted round robin (nginx's algorithm) over the epoch's validators
in id order, reduced by the gcd of the powers. Its cycle has length sum(power)/gcd and gives each
validator slots in proportion to its power, spread out evenly; ``base_leader(view)`` is
``cycle[view % len(cycle)]``.

Reputation gate (docs/consensus.md, "Leaders", has the reasoning). Committed blocks are read in
commit order for two kinds of evidence:

* **failure** - a committed block at view v whose parent (same epoch) is at view p leaves the
  views p+1 .. v-1 without a block on the committed chain (a *gap*). A missed view u failed
  because its leader did not propose or because the leader of u+1, who alone collects the
  votes of u, did not form the QC. The leader of p+1 collected the parent's QC (the block
  carries it) and the leader of v proposed the block, so both were running; :func:`blamed_views`
  blames the fewest leaders that explain every missed view, choosing greedily from the left.
  For the usual single crashed leader at u the gap is {u-1, u} and only the leader of u is
  blamed, not the live leader of u-1 whose block lost its votes to the crashed collector.
* **life** - the proposer of a committed block (at its view) and every signer of the QC it
  carries (at that QC's view) were demonstrably running at that view.

For view v the gate looks at the evidence of views below ``v - lag``. A validator is a
candidate to skip when it is quarantined by the application, or *silent* (its latest failure is
later than its latest sign of life: a crashed validator stays silent, however long ago it
failed, until a QC it signed commits), or failed within the ``window`` views before that point
(a live validator that drops its slots still loses ``window`` views after each failure).
Candidates are skipped in that order of priority (quarantined, then silent ones longest silent
first, then recent failures), while their total power stays within f: the gate never costs
liveness to more than f power, and with f crashed validators exactly those are skipped. A
skipped slot goes to the next base slot (v+1, v+2, ...) whose validator is not skipped.

Only committed data feeds the gate, and the ``lag`` (default 2 * window) lets a failure be known
to every honest node, which commit the same prefix, well before it changes anyone's schedule; a
node that lags further behind may briefly disagree on a leader, which costs a timeout, never
safety (a proposal is voted on only if it is safe on its own).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from math import gcd
from typing import Protocol

from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.validator_set import ValidatorSet

NEVER = -1  # the view of evidence that does not exist (before any view)
_QUARANTINED, _SILENT, _RECENT = range(3)  # priority of skip candidates, most certain first


class LeaderSchedule(Protocol):
    def leader(self, view: int) -> str: ...

    def record_committed(self, parent_view: int | None, block: Block) -> None: ...

    def replay(self, blocks: Sequence[Block]) -> None: ...


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


def blamed_views(parent_view: int, view: int) -> list[int]:
    """The missed views between a committed parent and its committed child whose leaders fail.

    Missed view u is explained by the leader of u (no proposal) or of u + 1 (no QC collected):
    a path over the leaders of views parent+1 .. view, in which parent+1 (it collected the
    parent's QC) and view (it proposed the child) are known live. The greedy minimum cover of
    that path - for each unexplained missed view take the later of its two leaders, except at
    the end where only the earlier one may be taken - blames no live leader when the crashed
    ones are not adjacent in the schedule, and never more leaders than views were missed.
    """
    blamed: list[int] = []
    for missed in range(parent_view + 1, view):
        if blamed and blamed[-1] >= missed:
            continue  # already explained by the leader of ``missed`` itself
        blamed.append(missed + 1 if missed + 1 < view else missed)
    return blamed


class _Evidence:
    """Views at which one validator failed as leader, and views at which it showed life."""

    __slots__ = ("failures", "life")

    def __init__(self) -> None:
        self.failures: list[int] = []  # ascending: committed blocks arrive in view order
        self.life: list[int] = []

    @staticmethod
    def _latest_before(views: list[int], limit: int) -> int:
        index = bisect_left(views, limit)
        return views[index - 1] if index else NEVER

    def last_failure(self, limit: int) -> int:
        return self._latest_before(self.failures, limit)

    def last_life(self, limit: int) -> int:
        return self._latest_before(self.life, limit)

    @staticmethod
    def _add(views: list[int], view: int) -> None:
        if not views or views[-1] < view:
            views.append(view)

    def add_failure(self, view: int) -> None:
        self._add(self.failures, view)

    def add_life(self, view: int) -> None:
        self._add(self.life, view)

    def prune(self, floor: int) -> None:
        """Forget evidence below ``floor`` except the latest of each kind (the silence test)."""
        for views in (self.failures, self.life):
            index = bisect_left(views, floor)
            if index > 1:
                del views[: index - 1]


class ReputationLeaderElection:
    """The production :class:`LeaderSchedule` (see the module docstring for the rule)."""

    def __init__(self, validator_set: ValidatorSet, *, window: int = 10,
                 lag: int | None = None, probation: int | None = None,
                 max_cycle: int = 100_000) -> None:
        self._set = validator_set
        self._cycle = weighted_round_robin(validator_set)[:max_cycle]
        self._window = window
        self._lag = 2 * window if lag is None else lag
        self._probation = 32 * window if probation is None else probation
        self._evidence = {validator_id: _Evidence() for validator_id in validator_set.ids}
        self._any_failure = False
        self._quarantined: frozenset[str] = frozenset()
        self._memo: dict[int, str] = {}

    def base_leader(self, view: int) -> str:
        return self._cycle[view % len(self._cycle)]

    @property
    def probation(self) -> int:
        """Views per probation period (see :meth:`_on_probation`)."""
        return self._probation

    def set_quarantined(self, validator_ids: frozenset[str]) -> None:
        """Validators the application quarantined, from committed state."""
        self._quarantined = frozenset(validator_ids) & frozenset(self._evidence)
        self._memo.clear()

    def record_committed(self, parent_view: int | None, block: Block) -> None:
        """Learn failures and signs of life from one newly committed block (in commit order).

        The leaders of the missed views are resolved with the schedule as it stood before
        this block, the one every node used while those views ran.
        """
        failed = ([] if parent_view is None
                  else [(view, self.leader(view)) for view in blamed_views(parent_view,
                                                                           block.view)])
        still_out = self._still_out(block)
        if still_out is not None:
            failed.append((block.view, still_out))
        self._memo.clear()
        for signer in block.qc.signers:
            self._note(signer, block.qc.view, failure=False)
        for view, leader in failed:
            self._note(leader, view, failure=True)
        self._note(block.proposer, block.view, failure=False)
        # Queries come for views at or above the committed one (the next gap, the current
        # view), so evidence older than the gate's reach from there is summarised.
        floor = block.view - self._lag - self._window
        for evidence in self._evidence.values():
            evidence.prune(floor)

    def _still_out(self, block: Block) -> str | None:
        """The base leader of ``block``'s view if it was skipped there and is still silent.

        A block proposed by someone other than the base leader proves that the quorum which
        certified it skipped the base leader. If that validator has also shown no life for
        ``lag`` views it is still out, and recording a failure at this view keeps a crashed
        validator's latest failure recent: a node that restarts and replays only the last few
        hundred blocks then reaches the same verdict as the nodes that never stopped. A live
        validator signs QCs all the time, so its skipped slots (a recent failure) add nothing.
        """
        base = self.base_leader(block.view)
        evidence = self._evidence.get(base)
        if block.proposer == base or evidence is None \
                or evidence.last_life(block.view) >= block.view - self._lag:
            return None
        return base

    def replay(self, blocks: Sequence[Block]) -> None:
        """Learn from committed blocks of this epoch, oldest first (a node after a restart).

        ``lag + window`` blocks plus two cycles of the schedule are enough to reach the
        verdict of the nodes that never stopped (see the docstring of ``record_committed``).
        """
        parent: Block | None = None
        for block in blocks:
            self.record_committed(None if parent is None else parent.view, block)
            parent = block

    def _note(self, validator_id: str, view: int, *, failure: bool) -> None:
        evidence = self._evidence.get(validator_id)
        if evidence is None:
            return  # not in this epoch's set (a malformed QC never reaches a committed block)
        if failure:
            evidence.add_failure(view)
            self._any_failure = True
        else:
            evidence.add_life(view)

    def skipped(self, view: int) -> frozenset[str]:
        """The validators whose slots the gate gives away at ``view`` (at most f power)."""
        if not (self._any_failure or self._quarantined):
            return frozenset()
        limit = view - self._lag
        candidates: list[tuple[int, int, str]] = []
        for validator_id, evidence in self._evidence.items():
            rank = self._candidate_rank(validator_id, evidence, limit)
            if rank is not None:
                candidates.append((*rank, validator_id))
        budget = self._set.quorum.max_faulty_power
        chosen: set[str] = set()
        for _, _, validator_id in sorted(candidates):
            power = self._set.power_of((validator_id,))
            if power <= budget:
                chosen.add(validator_id)
                budget -= power
        return frozenset(chosen)

    def _candidate_rank(self, validator_id: str, evidence: _Evidence,
                        limit: int) -> tuple[int, int] | None:
        """(priority, order within it) if ``validator_id`` may be skipped, from views < limit."""
        failure, life = evidence.last_failure(limit), evidence.last_life(limit)
        if validator_id in self._quarantined:
            return _QUARANTINED, NEVER
        if failure > life:
            return _SILENT, life  # the longest silent first
        if failure != NEVER and failure >= limit - self._window:
            return _RECENT, -failure  # the latest failure first
        return None

    def leader(self, view: int) -> str:
        chosen = self._memo.get(view)
        if chosen is None:
            chosen = self._choose(view)
            if len(self._memo) > 1024:
                self._memo.clear()
            self._memo[view] = chosen
        return chosen

    def _choose(self, view: int) -> str:
        skipped = self.skipped(view)
        base = self.base_leader(view)
        if base not in skipped or self._on_probation(view, base):
            return base
        for offset in range(len(self._cycle)):
            candidate = self.base_leader(view + offset)
            if candidate not in skipped:
                return candidate
        return self.base_leader(view)


    def _on_probation(self, view: int, validator_id: str) -> bool:
        """Whether a silent validator gets its slot back at ``view``: its first base slot in
        each period of ``probation`` views (not for quarantined ones).

        Signs of life come from QCs, which carry only the first quorum of votes: a validator
        that is running but whose votes keep arriving after the quorum (one that just restarted
        on a slow disk, say) would otherwise stay silent, and skipped, for good, and so would
        transactions that only reach its mempool. One slot per period lets it prove itself by
        proposing; a crashed validator costs that one slot (and the view whose votes go to it)
        per period. A function of the view and committed evidence only, like the gate.
        """
        if validator_id in self._quarantined:
            return False
        evidence = self._evidence[validator_id]
        limit = view - self._lag
        if evidence.last_failure(limit) <= evidence.last_life(limit):
            return False  # skipped for a recent failure: back after the window anyway
        period_start = view - view % self._probation
        return all(self.base_leader(earlier) != validator_id
                   for earlier in range(period_start, view))


class FixedLeaderSchedule:
    """A scripted schedule (Twins scenarios): ``leaders[view]`` or round robin beyond it."""

    def __init__(self, leaders: dict[int, str], fallback: tuple[str, ...]) -> None:
        self._leaders = dict(leaders)
        self._fallback = fallback

    def leader(self, view: int) -> str:
        return self._leaders.get(view, self._fallback[view % len(self._fallback)])

    def record_committed(self, parent_view: int | None, block: Block) -> None:
        return None

    def replay(self, blocks: Sequence[Block]) -> None:
        return None
