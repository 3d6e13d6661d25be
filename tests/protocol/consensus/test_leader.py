"""Leader rotation and its reputation gate (cybermesh/protocol/consensus/leader.py).

Most tests drive the election through :func:`run_crash_model`: views in order, each led by the
election's own choice, with the protocol's crash-fault behaviour (a crashed leader proposes
nothing; a block whose next leader crashed gets no QC, since votes go to that leader only),
and the 2-chain commits fed back in commit order, as the core does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cybermesh.protocol.consensus import leader as leader_module
from cybermesh.protocol.consensus.leader import (
    ReputationLeaderElection,
    blamed_views,
    weighted_round_robin,
)
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, QuorumCert
from cybermesh.protocol.validator_set import Validator, ValidatorSet

from .broken_elections import ForgetfulElection, NoSkipEvidenceElection, blame_every_missed_view

pytestmark = pytest.mark.unit

WINDOW, LAG = 10, 20


def validator_set(count: int, powers: tuple[int, ...] | None = None) -> ValidatorSet:
    powers = powers or (1,) * count
    return ValidatorSet(0, tuple(Validator(f"v{i:02d}", bytes([i + 1]) * 32, powers[i])
                                 for i in range(count)))


def block(view: int, proposer: str, qc_view: int, signers: tuple[str, ...]) -> Block:
    qc = QuorumCert(epoch=0, view=qc_view, block_id=bytes([qc_view % 256]) * 32, height=0,
                    signatures=tuple((signer, b"") for signer in sorted(signers)))
    return Block(epoch=0, view=view, height=view, parent_id=qc.block_id, proposer=proposer,
                 timestamp_ms=view, payload=b"", tx_root=ZERO_HASH, state_root=ZERO_HASH,
                 validator_set_hash=ZERO_HASH, qc=qc)


@dataclass
class CrashRun:
    leaders: dict[int, str] = field(default_factory=dict)
    skipped: dict[int, frozenset[str]] = field(default_factory=dict)
    committed: list[Block] = field(default_factory=list)
    first_failure: int | None = None

    def led_by(self, ids: set[str], from_view: int) -> list[int]:
        return [view for view, who in self.leaders.items() if view >= from_view and who in ids]


def run_crash_model(election: ReputationLeaderElection, validators: ValidatorSet,
                    dead: set[str], views: int, *, dead_from: int = 1,
                    revive_at: int | None = None) -> CrashRun:
    """Run ``views`` views with ``dead`` crashed from view ``dead_from`` (until ``revive_at``)."""
    run = CrashRun()
    certified: list[tuple[int, str]] = [(0, "")]  # (view, proposer) of the certified chain
    recorded = 0  # certified[:recorded + 1] is committed (the genesis counts as committed)

    def is_dead(validator_id: str, view: int) -> bool:
        return validator_id in dead and dead_from <= view and (revive_at is None
                                                              or view < revive_at)

    for view in range(1, views):
        run.leaders[view] = who = election.leader(view)
        run.skipped[view] = election.skipped(view)
        if is_dead(who, view) or is_dead(election.leader(view + 1), view):
            run.first_failure = run.first_failure or view
            continue
        certified.append((view, who))
        # 2-chain: a certified block whose certified child is in the next view commits
        # everything up to it. The QC each block carries is signed by the live validators.
        if len(certified) >= 3 and certified[-1][0] == certified[-2][0] + 1:
            while recorded < len(certified) - 2:
                (parent_view, _), (child_view, proposer) = (certified[recorded],
                                                            certified[recorded + 1])
                live = tuple(v for v in validators.ids if not is_dead(v, parent_view))
                run.committed.append(block(child_view, proposer, parent_view, live))
                election.record_committed(parent_view, run.committed[-1])
                recorded += 1
    return run


def election_for(validators: ValidatorSet) -> ReputationLeaderElection:
    return ReputationLeaderElection(validators, window=WINDOW, lag=LAG)


def probation_slots(election: ReputationLeaderElection, ids: set[str], start: int,
                    end: int) -> set[int]:
    """Views in [start, end) that are the first base slot of one of ``ids`` in a probation
    period: the only views a silent validator may still lead."""
    period = election.probation
    return {view for view in range(start, end) if election.base_leader(view) in ids
            and all(election.base_leader(earlier) != election.base_leader(view)
                    for earlier in range(view - view % period, view))}


def test_weighted_round_robin_is_proportional_to_power():
    cycle = weighted_round_robin(validator_set(4, (1, 2, 3, 4)))
    assert len(cycle) == 10 and [cycle.count(f"v{i:02d}") for i in range(4)] == [1, 2, 3, 4]


@pytest.mark.parametrize(("parent", "child", "blamed"), [
    (5, 6, []),                  # no gap
    (5, 7, [6]),                 # one missed view: its leader did not propose
    (5, 8, [7]),                 # dead leader at 7: the leader of 6 lost its votes to it
    (5, 9, [7, 8]),              # two crashed leaders in a row
    (5, 10, [7, 9]),             # crashed leaders at 7 and 9, a live one between them
])
def test_blame_falls_on_the_fewest_leaders_that_explain_the_gap(parent, child, blamed):
    assert blamed_views(parent, child) == blamed


@pytest.mark.parametrize(("size", "dead"), [
    (4, {"v03"}), (4, {"v00"}), (7, {"v02"}), (7, {"v02", "v03"}), (7, {"v01", "v05"}),
    (10, {"v00", "v04", "v09"}),
])
def test_exactly_the_crashed_validators_lose_their_slots_once_the_window_fills(size, dead):
    validators = validator_set(size)
    election = election_for(validators)
    run = run_crash_model(election, validators, dead, 400, dead_from=30)
    assert run.first_failure is not None
    filled = run.first_failure + LAG + WINDOW + size
    # One probation slot per crashed validator per period at most (one period here).
    assert set(run.led_by(dead, filled)) <= probation_slots(election, dead, filled, 400)
    assert len(run.led_by(dead, filled)) <= len(dead)
    assert {view: skipped for view, skipped in run.skipped.items()
            if view >= filled and skipped != dead} == {}


def test_no_validator_is_skipped_while_all_are_live():
    validators = validator_set(7)
    run = run_crash_model(election_for(validators), validators, set(), 200)
    assert run.first_failure is None and not any(run.skipped.values())


def test_a_revived_validator_leads_again_once_its_votes_commit():
    validators = validator_set(4)
    run = run_crash_model(election_for(validators), validators, {"v02"}, 300,
                          dead_from=20, revive_at=150)
    assert run.led_by({"v02"}, 100) and min(run.led_by({"v02"}, 100)) > 150
    assert run.led_by({"v02"}, 150 + LAG + len(validators) + 2)


def test_the_gate_never_skips_more_than_f_power_and_keeps_the_longest_silent():
    validators = validator_set(4)  # f = 1
    election = election_for(validators)
    live = ("v00", "v01", "v02")
    election.record_committed(0, block(1, "v01", 0, validators.ids))
    election.record_committed(1, block(4, "v00", 1, live))  # gap {2, 3}: blames view 3
    election.record_committed(4, block(7, "v00", 4, live))  # gap {5, 6}: blames view 6
    assert (election.base_leader(3), election.base_leader(6)) == ("v03", "v02")
    # Both are silent now (no sign of life after their failure): v03 since view 1, v02 since
    # view 4. Skipping both would cost 2 > f power; the longest silent one is skipped.
    assert election.skipped(6 + LAG + 1) == {"v03"}
    assert all(election.leader(view) != "v03" for view in range(6 + LAG + 1, 6 + LAG + 40))


def test_quarantined_validators_are_skipped_first():
    validators = validator_set(4)
    election = election_for(validators)
    election.set_quarantined(frozenset({"v01", "unknown"}))
    assert election.skipped(50) == {"v01"}
    assert all(election.leader(view) != "v01" for view in range(50, 80))


def test_a_live_leader_that_fails_once_sits_out_one_window_then_returns():
    validators = validator_set(4)
    election = election_for(validators)
    failing = election.base_leader(8)
    election.record_committed(6, block(7, election.base_leader(7), 6, validators.ids))
    election.record_committed(7, block(9, election.base_leader(9), 7, validators.ids))
    assert blamed_views(7, 9) == [8]
    election.record_committed(9, block(10, election.base_leader(10), 9, validators.ids))
    assert failing not in election.skipped(8 + LAG)
    assert failing in election.skipped(8 + LAG + 1)
    assert failing in election.skipped(8 + LAG + WINDOW)
    assert failing not in election.skipped(8 + LAG + WINDOW + 1)


def test_every_node_fed_the_same_commits_chooses_the_same_leaders():
    validators = validator_set(7)
    first, second = election_for(validators), election_for(validators)
    run_crash_model(first, validators, {"v03"}, 150, dead_from=10)
    run_crash_model(second, validators, {"v03"}, 150, dead_from=10)
    assert [first.leader(v) for v in range(150, 400)] == [second.leader(v)
                                                          for v in range(150, 400)]


def replay_agrees(election_type: type[ReputationLeaderElection]) -> bool:
    """A node restarted late, replaying only the last lag + window + 2 cycles of blocks,
    chooses the same leaders as the nodes that ran all along (n = 7, v03 dead from view 30)."""
    validators = validator_set(7)
    running = election_type(validators, window=WINDOW, lag=LAG)
    run = run_crash_model(running, validators, {"v03"}, 600, dead_from=30)
    restarted = election_type(validators, window=WINDOW, lag=LAG)
    restarted.replay(run.committed[-(LAG + WINDOW + 2 * 7):])
    views = range(600, 700)
    return [restarted.leader(v) for v in views] == [running.leader(v) for v in views]


def test_a_restarted_node_that_replays_recent_blocks_agrees_on_leaders():
    assert replay_agrees(ReputationLeaderElection)


def test_without_the_skipped_slot_evidence_a_restarted_node_disagrees():
    assert not replay_agrees(NoSkipEvidenceElection)


# --- the checks above catch a broken rule ------------------------------------------------


def crashed_leader_problems(election_type: type[ReputationLeaderElection]) -> list[str]:
    """What the crash-model checks above find wrong with ``election_type`` (n = 7, one dead)."""
    validators = validator_set(7)
    election = election_type(validators, window=WINDOW, lag=LAG)
    run = run_crash_model(election, validators, {"v03"}, 400, dead_from=30)
    filled = (run.first_failure or 0) + LAG + WINDOW + 7
    probation = probation_slots(election, {"v03"}, filled, 400)
    problems = [f"crashed v03 leads view {view}" for view in run.led_by({"v03"}, filled)
                if view not in probation]
    problems += [f"live {sorted(skipped - {'v03'})} skipped at view {view}"
                 for view, skipped in run.skipped.items() if skipped - {"v03"}]
    return problems


def test_the_fixed_rule_passes_the_crash_model_checks():
    assert crashed_leader_problems(ReputationLeaderElection) == []


def test_a_rule_that_forgets_failures_after_the_window_is_caught():
    assert any("crashed v03 leads" in p for p in crashed_leader_problems(ForgetfulElection))


def run_slow_validator(election: ReputationLeaderElection, slow: str,
                       others: tuple[str, ...]) -> list[int]:
    """Views 1..899: ``slow`` is down before view 100, then runs but never signs a QC (its
    votes are always late); every other view commits. Returns the views ``slow`` led."""
    led, parent = [], 0
    for view in range(1, 900):
        leader = election.leader(view)
        if leader == slow:
            led.append(view)
            if view < 100:
                continue  # down: its slots fail, it is blamed, then silent
        election.record_committed(parent, block(view, leader, parent, others))
        parent = view
    return led


def test_a_slow_validator_never_in_a_qc_gets_a_probation_slot_and_returns_by_proposing():
    """v02 is down until view 100 (its slots fail) and then runs again, but its votes always
    arrive after the quorum: no QC carries its signature. It leads its probation slot, its
    block commits (a sign of life), and it is back in the rotation."""
    validators = validator_set(4)
    election = election_for(validators)
    others = ("v00", "v01", "v03")
    failing = "v02"
    led = run_slow_validator(election, failing, others)
    assert any(view >= 100 for view in led), "never given a probation slot"
    first_probation = min(view for view in led if view >= 100)
    later = [view for view in led if view > first_probation + LAG + WINDOW]
    assert len(later) > 20, "not back in the rotation after proposing"


def test_a_gate_without_probation_keeps_a_slow_validator_out_for_good():
    validators = validator_set(4)
    election = election_for(validators)
    election._probation = 10**9  # broken on purpose: no probation slots
    led = run_slow_validator(election, "v02", ("v00", "v01", "v03"))
    assert not [view for view in led if view >= 100]


def test_a_rule_that_blames_every_missed_view_is_caught(monkeypatch):
    monkeypatch.setattr(leader_module, "blamed_views", blame_every_missed_view)
    assert any(p.startswith("live") for p in crashed_leader_problems(ReputationLeaderElection))
