"""The timeout and epoch rules, caught (or shown unreachable) in the simulator.

Random schedules do not find the interleavings these rules exist for, so the attacks are
scripted (cybermesh/protocol/consensus/sim/scenarios.py): the adversary owns the network and the
faulty validator's key, the honest nodes are ordinary cores, and the ordinary invariant checker
judges the outcome. Every script is deterministic; ``result.log`` tells the story of a run.
"""

from collections import Counter

import pytest

from cybermesh.protocol.consensus.core import ConsensusCore
from cybermesh.protocol.consensus.errors import SafetyRuleViolation
from cybermesh.protocol.consensus.messages import Timeout, Vote, genesis_qc
from cybermesh.protocol.consensus.safety import Rule, SafetyRules
from cybermesh.protocol.consensus.sim.director import ScriptedSimulation
from cybermesh.protocol.consensus.sim.scenarios import SCENARIOS, run_scenario
from cybermesh.protocol.consensus.sim.twins import twins_config, twins_scenarios
from cybermesh.protocol.consensus.sim.world import run_schedule
from simulator.run import PROFILES, sized

pytestmark = pytest.mark.sim

TIMEOUT_RULES = (Rule.TIMEOUT_RAISES_LAST_VOTED_VIEW, Rule.TIMEOUT_QC_AT_LEAST_LOCK,
                 Rule.TIMEOUT_NOT_BELOW_LAST_VOTE, Rule.TIMEOUT_FOLLOWS_CERTIFICATE)
EXPECTED_KIND = {"timeout-then-vote": "agreement", "restart-below-lock": "agreement",
                 "ledger-behind-safety-data": "honest-double-vote"}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scripted_attack_is_caught_when_its_rule_is_off(name):
    _, rule = SCENARIOS[name]
    result = run_scenario(name, frozenset({rule}))
    assert result.violation is not None, "\n".join(result.log)
    assert result.violation.kind == EXPECTED_KIND[name]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_same_scripted_schedule_is_safe_with_every_rule_on(name):
    result = run_scenario(name)
    assert result.violation is None, "\n".join(result.log)


OTHER_TIMEOUT_RULE = [(name, other) for name in ("timeout-then-vote", "restart-below-lock")
                      for other in TIMEOUT_RULES if other is not SCENARIOS[name][1]]


@pytest.mark.parametrize(("name", "other"), OTHER_TIMEOUT_RULE,
                         ids=[f"{n}-{o.value}" for n, o in OTHER_TIMEOUT_RULE])
def test_each_timeout_attack_is_stopped_by_its_own_rule_alone(name, other):
    assert run_scenario(name, frozenset({other})).violation is None


@pytest.mark.parametrize(("name", "stopped_at"), [
    ("timeout-then-vote", "QC(B1) missing"),  # h2 refuses the vote after its timeout
    ("restart-below-lock", "no TC"),  # h2 refuses the timeout below its lock
    ("ledger-behind-safety-data", "h1 voted 0 time(s) in epoch 0 view 1"),
])
def test_with_every_rule_on_the_attack_stops_where_the_rule_refuses(name, stopped_at):
    log = run_scenario(name).log
    assert any(stopped_at in line for line in log), log


def _h2_voted_then_timed_out(sim):
    h2 = sim.honest_instances()[1]
    genesis = genesis_qc(0, sim.genesis.block_id, 0)
    proposal = sim.coalition.propose(1, genesis)
    sim.deliver(h2, proposal)
    votes = sim.take(Vote)
    sim.fire_timer(h2)
    return votes, sim.take(Timeout)


def test_a_vote_and_then_a_timeout_in_one_view_is_allowed():
    sim = ScriptedSimulation()
    sim.start()
    votes, timeouts = _h2_voted_then_timed_out(sim)
    assert [v.view for v in votes] == [1] and [t.view for t in timeouts] == [1]
    assert sim.honest_instances()[1].core.safety.data.last_voted_view == 1


def _restart_after_voting_through_a_tc(disabled):
    """h2 votes in view 2 through TC(1) on the genesis QC, restarts, and its view-1 timer fires.

    After the restart its core is in view 1 (highest QC = genesis) while its last vote is view
    2: the only way the core ever asks for a timeout below its last vote.
    """
    sim = ScriptedSimulation(disabled_rules=disabled)
    sim.start()
    _, h2, h3 = sim.honest_instances()
    genesis = genesis_qc(0, sim.genesis.block_id, 0)
    sim.fire_timer(h2)
    sim.fire_timer(h3)
    tc1 = sim.coalition.time_out(1, genesis, sim.take(Timeout))
    sim.deliver(h2, sim.coalition.propose(2, genesis, tc1))
    assert [v.view for v in sim.take(Vote)] == [2]
    sim.restart(h2)
    assert h2.core.view == 1 and h2.core.safety.data.last_voted_view == 2
    sim.fire_timer(h2)
    return sim, h2, sim.take(Timeout, sender=h2.validator_id)


def test_after_a_restart_the_core_asks_for_a_timeout_below_its_last_vote_and_is_refused():
    _, _, timeouts = _restart_after_voting_through_a_tc(frozenset())
    assert timeouts == []


def test_a_timeout_below_the_last_vote_still_carries_at_least_the_lock():
    # Why TIMEOUT_NOT_BELOW_LAST_VOTE is defence in depth (docs/consensus.md): with the other
    # two timeout rules on, such a timeout reports a QC >= the lock and lowers nothing.
    _, h2, timeouts = _restart_after_voting_through_a_tc(
        frozenset({Rule.TIMEOUT_NOT_BELOW_LAST_VOTE}))
    assert [t.view for t in timeouts] == [1]
    data = h2.core.safety.data
    assert timeouts[0].high_qc.view >= data.highest_qc_view and data.last_voted_view == 2


class _Audit:
    """Records every safety check that failed, and checks the core's view invariant."""

    def __init__(self, monkeypatch):
        self.refused: Counter[Rule] = Counter()
        self.events = 0
        check, handle = SafetyRules._check, ConsensusCore.handle
        audit = self

        def recording_check(rules, rule, ok, detail):
            if not ok:
                audit.refused[rule] += 1
            check(rules, rule, ok, detail)

        def checked_handle(core, event):
            actions = handle(core, event)
            audit.events += 1
            if core.view:
                tc_view = core.highest_tc.view if core.highest_tc is not None else -1
                assert core.view == max(core.highest_qc.view, tc_view) + 1
            assert core.safety.data.epoch == core.epoch.epoch
            return actions

        monkeypatch.setattr(SafetyRules, "_check", recording_check)
        monkeypatch.setattr(ConsensusCore, "handle", checked_handle)


def test_the_core_never_asks_for_a_timeout_off_its_certificates_or_a_signature_off_epoch(
        monkeypatch):
    """TIMEOUT_FOLLOWS_CERTIFICATE and EPOCH_MATCHES are second guards the core never trips.

    The pacemaker only enters view v through a QC or TC of v - 1, so its view is always
    max(highest QC view, highest TC view) + 1, and a timeout is asked for exactly with that QC
    (and that TC); the core installs each epoch's safety data before it handles a message of
    that epoch and drops messages of any other. Checked after every event of every profile,
    with crashes, Byzantine faults, Twins and a reconfiguration.
    """
    audit = _Audit(monkeypatch)
    for name, profile in PROFILES.items():
        for seed in range(2):
            result = run_schedule(sized(profile, 4), seed)
            assert result.violation is None, f"{name} seed={seed}: {result.summary()}"
    for index, scenario in enumerate(twins_scenarios(4, 1, 2)):
        if index % 512 == 0:
            run_schedule(twins_config(4, 1, scenario), index)
    assert audit.events > 10_000
    assert audit.refused[Rule.TIMEOUT_FOLLOWS_CERTIFICATE] == 0
    assert audit.refused[Rule.EPOCH_MATCHES] == 0
    assert audit.refused[Rule.VOTE_VIEW_MONOTONIC] > 0  # the audit does see refusals


def test_the_audit_sees_a_timeout_that_does_not_follow_a_certificate(monkeypatch):
    audit = _Audit(monkeypatch)
    sim = ScriptedSimulation()
    core = sim.honest_instances()[0].core
    with pytest.raises(SafetyRuleViolation):
        core.safety.make_timeout(3, genesis_qc(0, sim.genesis.block_id, 0), None)
    assert audit.refused[Rule.TIMEOUT_FOLLOWS_CERTIFICATE] == 1
