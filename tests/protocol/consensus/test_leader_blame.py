"""The reputation gate blames the fewest leaders that explain a gap in the committed chain."""

from __future__ import annotations

import pytest

from cybermesh.protocol.consensus.leader import ReputationLeaderElection, blamed_views
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, QuorumCert
from cybermesh.protocol.validator_set import Validator, ValidatorSet

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("parent", "child", "blamed"), [
    (1, 2, []), (1, 3, [2]), (1, 4, [3]), (1, 5, [3, 4]), (1, 6, [3, 5]),
])
def test_blame_falls_on_the_fewest_leaders_that_explain_the_gap(parent, child, blamed):
    assert blamed_views(parent, child) == blamed


def test_one_crashed_validator_is_skipped_not_its_live_predecessor():
    """View 3's leader is dead: view 2's block lost its votes to it, so views 2 and 3 are both
    missed. Blaming both (2 > f = 1 in a 4-set) switched the gate off; only the dead one is."""
    validators = ValidatorSet(0, tuple(Validator(f"v{i}", bytes([i + 1]) * 32, 1)
                                       for i in range(4)))
    election = ReputationLeaderElection(validators, window=10, lag=20)
    dead = election.base_leader(3)
    qc = QuorumCert(epoch=0, view=1, block_id=b"\x01" * 32, height=1,
                    signatures=(("v0", b""), ("v1", b""), ("v2", b"")))
    child = Block(epoch=0, view=4, height=2, parent_id=qc.block_id,
                  proposer=election.base_leader(4), timestamp_ms=4, payload=b"",
                  tx_root=ZERO_HASH, state_root=ZERO_HASH, validator_set_hash=ZERO_HASH, qc=qc)
    election.record_committed(1, child.view)
    gate_open = 3 + 20 + 1
    assert election._skipped(gate_open) == {dead}  # the gate itself


def _four() -> ValidatorSet:
    return ValidatorSet(0, tuple(Validator(f"v{i}", bytes([i + 1]) * 32, 1) for i in range(4)))


def _commit_after_gap(election: ReputationLeaderElection, parent_view: int, view: int) -> None:
    election.record_committed(parent_view, view)


def test_views_led_or_collected_by_a_failing_validator_are_suspect_until_it_leads_again():
    """The pacemaker gives such views a short wait: the view before a dead leader's (its votes
    go to the dead one) and the dead leader's own; the others keep the full timeout. A
    validator stays suspect after the gate forgot it, until a block it proposed commits."""
    election = ReputationLeaderElection(_four(), window=10, lag=20)
    assert not any(election.suspect(view) for view in range(4, 40))
    _commit_after_gap(election, 1, 4)  # views 2 and 3 missed: the leader of 3 is blamed
    dead = election.base_leader(3)
    suspect = [view for view in range(5, 200) if election.suspect(view)]
    assert suspect and all(dead in (election.leader(v), election.leader(v + 1)) for v in suspect)
    assert all(election.suspect(v) for v in range(5, 200)
               if dead in (election.leader(v), election.leader(v + 1)))
    election.record_committed(4, 5, proposer=dead)  # it led a committed block again
    assert not any(election.suspect(view) for view in range(6, 200))


def test_nothing_is_suspect_when_more_than_f_failed_recently():
    election = ReputationLeaderElection(_four(), window=10, lag=20)
    _commit_after_gap(election, 1, 4)
    _commit_after_gap(election, 4, 7)  # another gap blames another validator: 2 > f = 1
    assert not any(election.suspect(view) for view in range(8, 30))


def test_a_restarted_core_rebuilds_the_gate_from_the_recent_committed_blocks(net):
    """A node restarted (or rebuilt after a ledger catch-up) must choose the same leaders as
    the nodes that watched the failures happen: otherwise it proposes in views the others
    give to someone else, and they refuse its blocks (seen in the kill -9 cluster test)."""
    from itertools import pairwise

    from cybermesh.protocol.consensus.core import ConsensusCore, CoreConfig

    blocks, qc = [], net.genesis_qc
    for view in (1, 2, 3, 6, 7, 8, 9, 10, 11, 12):  # views 4 and 5 made no block
        block = net.block(view, qc)
        blocks.append(block)
        qc = net.qc_for(block)
    live = ReputationLeaderElection(net.validator_set, window=10)
    for parent, block in pairwise([net.genesis, *blocks]):
        live.record_committed(parent.view, block.view)

    def rebuilt(recent):
        return ConsensusCore(config=CoreConfig(validator_id="v01", chain_id="test-chain"),
                             signer=net.signers["v01"], verifier=net.verifier, epoch=net.epoch,
                             committed=blocks[-1], committed_qc=qc, recent_committed=recent)
    views = range(13, 60)
    expected = [live.leader(view) for view in views]
    assert [rebuilt(blocks).leaders.leader(view) for view in views] == expected
    assert [rebuilt(()).leaders.leader(view) for view in views] != expected  # the bug it fixes


def test_a_failure_keeps_a_leader_out_for_at_most_the_gate_memory():
    """The windows count views, and an idle chain turns a view only every few seconds: the
    block timestamps bound how long a failure counts, so a restarted validator (whose own
    transactions only it can propose) is not kept out for minutes."""
    from cybermesh.protocol.consensus.leader import GATE_MEMORY_MS

    now = [0]
    election = ReputationLeaderElection(_four(), window=10, lag=20, clock=lambda: now[0])
    election.record_committed(1, 4, timestamp_ms=50_000)  # the leader of view 3 is blamed
    dead = election.base_leader(3)
    gated = 3 + 20 + 1
    now[0] = 50_000 + GATE_MEMORY_MS - 1
    assert election._skipped(gated) == {dead}
    now[0] = 50_000 + GATE_MEMORY_MS
    election.set_quarantined(frozenset())  # (clears the memo, as a commit does)
    assert election._skipped(gated) == set()
