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
    election.record_committed(1, child)
    gate_open = 3 + 20 + 1
    assert election._skipped(gate_open) == {dead}  # the gate itself


def _four() -> ValidatorSet:
    return ValidatorSet(0, tuple(Validator(f"v{i}", bytes([i + 1]) * 32, 1) for i in range(4)))


def _commit_after_gap(election: ReputationLeaderElection, parent_view: int, view: int) -> None:
    qc = QuorumCert(epoch=0, view=parent_view, block_id=b"\x01" * 32, height=1,
                    signatures=(("v0", b""), ("v1", b""), ("v2", b"")))
    election.record_committed(parent_view, Block(
        epoch=0, view=view, height=2, parent_id=qc.block_id, proposer=election.base_leader(view),
        timestamp_ms=view, payload=b"", tx_root=ZERO_HASH, state_root=ZERO_HASH,
        validator_set_hash=ZERO_HASH, qc=qc))


def test_views_led_or_collected_by_a_recently_failed_validator_are_suspect():
    """The pacemaker gives such views a short wait: the view before a dead leader's (its votes
    go to the dead one) and the dead leader's own; the others keep the full timeout."""
    election = ReputationLeaderElection(_four(), window=10, lag=20)
    assert not any(election.suspect(view) for view in range(4, 40))
    _commit_after_gap(election, 1, 4)  # views 2 and 3 missed: the leader of 3 is blamed
    dead = election.base_leader(3)
    suspect = [view for view in range(5, 33) if election.suspect(view)]
    assert suspect and all(dead in (election.leader(v), election.leader(v + 1)) for v in suspect)
    assert all(election.suspect(v) for v in range(5, 33)
               if dead in (election.leader(v), election.leader(v + 1)))
    assert not any(election.suspect(view) for view in range(34, 60))  # the failure aged out


def test_nothing_is_suspect_when_more_than_f_failed_recently():
    election = ReputationLeaderElection(_four(), window=10, lag=20)
    _commit_after_gap(election, 1, 4)
    _commit_after_gap(election, 4, 7)  # another gap blames another validator: 2 > f = 1
    assert not any(election.suspect(view) for view in range(8, 30))
