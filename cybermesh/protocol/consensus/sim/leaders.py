"""Who led which view, and what it cost: a simulation that tallies the leader schedule.

The reputation gate (:mod:`..leader`) is judged by counts, not by wall-clock: once its window
has filled, a crashed validator should lead no view, and the views that time out should stop.
:func:`tally_leaders` runs one schedule and records, as one live honest node (the *observer*)
saw them, the leader of every view it entered, the views in which it sent a timeout, and the
views of the blocks it committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermesh.protocol.consensus.core import CoreConfig, LeaderFactory
from cybermesh.protocol.consensus.events import Action, Broadcast, CommitBlocks, Event
from cybermesh.protocol.consensus.messages import Timeout
from cybermesh.protocol.consensus.sim.byzantine import Outgoing
from cybermesh.protocol.consensus.sim.world import Instance, SimConfig, SimResult, Simulation

HALT_AT_MS = 2_000
# The core's default leader window; the election's lag defaults to twice that.
WINDOW = CoreConfig(validator_id="", chain_id="").leader_window


def crashed_leader_config(validators: int, crashed: tuple[str, ...], *,
                          duration_ms: int = 40_000,
                          restarts: tuple[tuple[str, int], ...] = ()) -> SimConfig:
    """``crashed`` stop for good at 2 s; the run goes on for ``duration_ms`` of simulated time
    (no early stop at the liveness target: the point is what every later view costs).
    ``restarts`` crash and restart other validators, whose cores are then rebuilt from
    their ledger."""
    return SimConfig(validators=validators, heal_at_ms=0, halted=crashed,
                     halt_at_ms=HALT_AT_MS, max_duration_ms=duration_ms, check_liveness=False,
                     liveness_commits=10**9, liveness_bound_ms=duration_ms, restarts=restarts)


@dataclass(slots=True)
class LeaderTally:
    """What the observer saw, per view (see the module docstring)."""

    observer: str
    result: SimResult | None = None
    leaders: dict[int, str] = field(default_factory=dict)
    entered_ms: dict[int, int] = field(default_factory=dict)
    timeout_views: list[int] = field(default_factory=list)
    committed_views: list[int] = field(default_factory=list)

    @property
    def last_view(self) -> int:
        return max(self.leaders, default=0)

    def view_at(self, ms: int) -> int:
        """The first view the observer entered at or after simulated time ``ms``."""
        return min((view for view, at in self.entered_ms.items() if at >= ms),
                   default=self.last_view + 1)

    def views_led_by(self, validator_ids: set[str], *, from_view: int = 0) -> int:
        return sum(1 for view, leader in self.leaders.items()
                   if view >= from_view and leader in validator_ids)

    def window_filled_view(self, validators: int) -> int:
        """The first view by which a crash at 2 s is committed and the gate's lag + window have
        passed (one more cycle of slots for the failure to happen at all)."""
        return self.view_at(HALT_AT_MS) + 3 * WINDOW + validators

    def timeouts(self, *, from_view: int = 0) -> int:
        return sum(1 for view in self.timeout_views if view >= from_view)

    def commits(self, *, from_view: int = 0) -> int:
        return sum(1 for view in self.committed_views if view >= from_view)

    def summary(self, crashed: set[str], from_view: int) -> str:
        span = max(1, self.last_view - from_view)
        led, commits = self.views_led_by(crashed, from_view=from_view), self.commits(
            from_view=from_view)
        return (f"observer={self.observer} views={self.last_view} from view {from_view}: "
                f"led by crashed={led} timeouts={self.timeouts(from_view=from_view)} "
                f"commits={commits} ({100 * commits // span}% of views)")


class _TallyingSimulation(Simulation):
    def __init__(self, config: SimConfig, seed: int, leader_factory: LeaderFactory | None,
                 observer: str) -> None:
        self._election = leader_factory
        super().__init__(config, seed)
        self.tally = LeaderTally(observer=observer)

    def _leader_factory(self) -> LeaderFactory | None:
        return self._election or super()._leader_factory()

    def _deliver(self, inst: Instance, event: Event) -> None:
        super()._deliver(inst, event)
        core = inst.core
        if inst.validator_id == self.tally.observer and core.view not in self.tally.leaders:
            self.tally.leaders[core.view] = core.leaders.leader(core.view)
            self.tally.entered_ms[core.view] = self.now

    def _execute(self, inst: Instance, action: Outgoing) -> None:
        if inst.validator_id == self.tally.observer:
            self._note(action)
        super()._execute(inst, action)

    def _note(self, action: Action | Outgoing) -> None:
        if isinstance(action, Broadcast) and isinstance(action.message, Timeout):
            self.tally.timeout_views.append(action.message.view)
        elif isinstance(action, CommitBlocks):
            self.tally.committed_views.extend(item.block.view for item in action.blocks)


def tally_leaders(config: SimConfig, seed: int, *,
                  leader_factory: LeaderFactory | None = None) -> LeaderTally:
    """Run one schedule (optionally with another leader election) and tally its leaders.

    The observer is the first validator that is neither faulty nor in ``config.halted``.
    """
    probe = Simulation(config, seed)
    observer = next(vid for vid in probe.validator_ids
                    if vid in probe.honest and vid not in config.halted)
    sim = _TallyingSimulation(config, seed, leader_factory, observer)
    sim.tally.result = sim.run()
    return sim.tally
