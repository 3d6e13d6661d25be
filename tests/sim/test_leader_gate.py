"""The reputation gate in the simulator: a crashed validator stops costing views.

A validator crashes for good at 2 s of simulated time. Once the gate's lag and window have
passed, the live observer must see no view led by it and no timeout at all, and nearly every
view commit a block. Counts of views, timeouts and commits only; no wall-clock.
"""

import pytest

from cybermesh.protocol.consensus.sim.invariants import RECENT_BLOCKS
from cybermesh.protocol.consensus.sim.leaders import (
    HALT_AT_MS,
    WINDOW,
    crashed_leader_config,
    tally_leaders,
)
from tests.protocol.consensus.broken_elections import ForgetfulElection, NoSkipEvidenceElection

pytestmark = pytest.mark.sim

LAG = 2 * WINDOW  # the election's default
PROBATION = 32 * WINDOW  # the election's default probation period (views)


def probation_allowance(crashed: tuple[str, ...], start: int, end: int) -> int:
    """At most one probation slot per crashed validator per period the views span."""
    return len(crashed) * ((end - start) // PROBATION + 1)


@pytest.mark.parametrize(("validators", "crashed"), [
    (4, ("v02",)), (4, ("v00",)), (7, ("v02", "v03")), (7, ("v01", "v05")),
])
def test_a_crashed_validator_gets_no_leader_slots_once_the_window_fills(validators, crashed):
    tally = tally_leaders(crashed_leader_config(validators, crashed), seed=1)
    assert tally.result is not None and tally.result.violation is None
    start = tally.window_filled_view(validators)
    span = tally.last_view - start
    detail = tally.summary(set(crashed), start)
    assert span >= 200, detail  # the chain runs fast again: hundreds of views after the fill
    # Only probation slots (each costs its view and the one whose votes go to it).
    allowance = probation_allowance(crashed, start, tally.last_view)
    assert tally.views_led_by(set(crashed), from_view=start) <= allowance, detail
    assert tally.timeouts(from_view=start) <= 2 * allowance, detail
    assert tally.commits(from_view=start) >= span * 95 // 100 - 2 * allowance, detail
    # Before the fill the crashed validator cost at most its slots within lag + window views.
    assert tally.views_led_by(set(crashed), from_view=tally.view_at(HALT_AT_MS)) \
        <= len(crashed) * ((LAG + WINDOW + validators) // validators + 1), detail


def test_the_run_catches_a_gate_that_forgets_a_crash_after_its_window():
    tally = tally_leaders(crashed_leader_config(4, ("v02",)), seed=1,
                          leader_factory=lambda vs: ForgetfulElection(vs, window=WINDOW))
    start = tally.window_filled_view(4)
    allowance = probation_allowance(("v02",), start, tally.last_view)
    assert tally.views_led_by({"v02"}, from_view=start) > allowance
    assert tally.timeouts(from_view=start) > 2 * allowance


RESTART_MS = 36_000


def restart_after_the_gate_closed(leader_factory=None):
    """v02 dead from 2 s; v01 crashes at 36 s and restarts from its ledger, whose last 128
    blocks (what it replays) no longer contain v02's real failure (at view ~80; the restart
    is at view ~315). The observer is v00, which never stops."""
    config = crashed_leader_config(4, ("v02",), restarts=(("v01", RESTART_MS),),
                                   duration_ms=50_000)
    tally = tally_leaders(config, seed=1, leader_factory=leader_factory)
    return tally, tally.view_at(RESTART_MS)


def test_a_node_restarted_after_the_gate_closed_agrees_on_the_leaders():
    tally, restart_view = restart_after_the_gate_closed()
    detail = tally.summary({"v02"}, restart_view)
    assert restart_view > tally.window_filled_view(4) + RECENT_BLOCKS, detail
    assert tally.last_view - restart_view >= 100, detail
    filled = tally.window_filled_view(4)
    allowance = probation_allowance(("v02",), filled, tally.last_view)
    assert tally.views_led_by({"v02"}, from_view=filled) <= allowance, detail
    # The restart itself may cost one view, and each probation slot two.
    assert tally.timeouts(from_view=restart_view) <= 1 + 2 * allowance, detail


def test_a_restarted_node_without_the_skipped_slot_evidence_disagrees_and_costs_timeouts():
    tally, restart_view = restart_after_the_gate_closed(
        lambda vs: NoSkipEvidenceElection(vs, window=WINDOW))
    allowance = probation_allowance(("v02",), tally.window_filled_view(4), tally.last_view)
    assert tally.timeouts(from_view=restart_view) > 1 + 2 * allowance, \
        tally.summary({"v02"}, restart_view)
