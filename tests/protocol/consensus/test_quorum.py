from dataclasses import replace

import pytest

from cybermesh.protocol.consensus.errors import CertificateError, CertificateErrorReason
from cybermesh.protocol.consensus.evidence import make_evidence, verify_evidence
from cybermesh.protocol.consensus.leader import ReputationLeaderElection, weighted_round_robin
from cybermesh.protocol.consensus.messages import EvidenceKind, SignedStatement, Vote
from cybermesh.protocol.consensus.pacemaker import Pacemaker, PacemakerParameters
from cybermesh.protocol.consensus.quorum import VoteAggregator
from cybermesh.protocol.validator_set import Validator, ValidatorSet

from .conftest import DOMAINS, IDS

pytestmark = pytest.mark.unit


def test_valid_qc_is_accepted(net):
    block = net.block(1, net.genesis_qc)
    net.certs.verify_qc(net.qc_for(block), net.epoch)


@pytest.mark.parametrize("mutate, reason", [
    (lambda qc: replace(qc, signatures=qc.signatures[:2]), CertificateErrorReason.NO_QUORUM),
    (lambda qc: replace(qc, signatures=(("zz", b"s" * 64), *qc.signatures[:2])),
     CertificateErrorReason.UNKNOWN_SIGNER),
    (lambda qc: replace(qc, signatures=(qc.signatures[0], *qc.signatures)),
     CertificateErrorReason.DUPLICATE_SIGNER),
    (lambda qc: replace(qc, signatures=(("v00", b"f" * 64), *qc.signatures[1:])),
     CertificateErrorReason.BAD_SIGNATURE),
    (lambda qc: replace(qc, epoch=1), CertificateErrorReason.WRONG_EPOCH),
    (lambda qc: replace(qc, view=0), CertificateErrorReason.BAD_GENESIS),
])
def test_invalid_qcs_are_refused_with_a_reason(net, mutate, reason):
    qc = net.qc_for(net.block(1, net.genesis_qc))
    with pytest.raises(CertificateError) as error:
        net.certs.verify_qc(mutate(qc), net.epoch)
    assert error.value.reason is reason


def test_vote_aggregation_ignores_duplicates_and_counts_an_equivocator_once(net):
    block = net.block(1, net.genesis_qc)
    other = net.block(1, net.genesis_qc, payload=b"other")
    aggregator = VoteAggregator()

    def vote(voter, target):
        return Vote(0, 1, target.block_id, 1, voter,
                    net.signers[voter].sign(DOMAINS.vote, target.statement()))

    assert aggregator.add(vote("v00", block), net.validator_set) is None
    assert aggregator.add(vote("v00", block), net.validator_set) is None
    assert aggregator.add(vote("v01", other), net.validator_set) is None
    assert aggregator.seen(vote("v01", block)).block_id == other.block_id
    assert aggregator.add(vote("v01", block), net.validator_set) is None
    assert aggregator.add(vote("v02", block), net.validator_set) is None
    qc = aggregator.add(vote("v03", block), net.validator_set)
    assert qc is not None and qc.signers == ("v00", "v02", "v03")
    net.certs.verify_qc(qc, net.epoch)


def test_equivocation_evidence_verifies_with_the_public_key_alone(net):
    a = net.block(1, net.genesis_qc)
    b = net.block(1, net.genesis_qc, payload=b"other")
    sign = net.signers["v01"].sign
    evidence = make_evidence(
        EvidenceKind.DOUBLE_VOTE, epoch=0, view=1, validator_id="v01",
        one=SignedStatement(a.block_id, 1, sign(DOMAINS.vote, a.statement())),
        other=SignedStatement(b.block_id, 1, sign(DOMAINS.vote, b.statement())))
    key = net.validator_set.get("v01").public_key
    assert verify_evidence(evidence, key, DOMAINS, net.verifier)
    assert not verify_evidence(evidence, net.validator_set.get("v02").public_key, DOMAINS,
                               net.verifier)
    same = replace(evidence, second=evidence.first)
    assert not verify_evidence(same, key, DOMAINS, net.verifier)


def test_pacemaker_is_aimd_within_bounds():
    pacemaker = Pacemaker(PacemakerParameters(base_timeout_ms=1000, min_timeout_ms=500,
                                              max_timeout_ms=3000, timeout_increase_bps=20000,
                                              timeout_decrease_ms=100))
    assert pacemaker.enter(1, progress=True) and pacemaker.timeout_ms == 900
    pacemaker.record_failure()
    pacemaker.record_failure()  # the same view again: counted once
    assert pacemaker.timeout_ms == 1800 and pacemaker.consecutive_failures == 1
    assert pacemaker.enter(2, progress=False)  # the TC of view 1: still one failure for it
    assert pacemaker.timeout_ms == 1800 and pacemaker.consecutive_failures == 1
    assert pacemaker.enter(3, progress=False)  # view 2 failed too
    assert pacemaker.timeout_ms == 3000 and pacemaker.consecutive_failures == 2
    assert not pacemaker.enter(1, progress=True)
    assert pacemaker.enter(5, progress=True) and pacemaker.timeout_ms == 2900
    for view in range(6, 60):
        pacemaker.enter(view, progress=True)
    assert pacemaker.timeout_ms == 500


def test_an_expected_failure_does_not_raise_the_timeout_and_gets_a_short_wait():
    pacemaker = Pacemaker(PacemakerParameters(base_timeout_ms=1000, min_timeout_ms=400,
                                              max_timeout_ms=3000, timeout_increase_bps=15000,
                                              timeout_decrease_ms=50))
    for view in range(1, 30):  # a crashed leader every 5 views: two expected failures each
        expected = view % 5 in (3, 4)
        pacemaker.enter(view, progress=not expected, expected_failure=expected)
    assert pacemaker.timeout_ms == 400  # without the rule it climbed to the maximum
    assert pacemaker.suspect_timeout_ms == 400
    pacemaker.enter(30, progress=False)  # an unexpected failure still backs off
    assert pacemaker.timeout_ms == 600 and pacemaker.suspect_timeout_ms == 500


def test_weighted_round_robin_is_proportional_to_power():
    validators = tuple(Validator(v, bytes([i]) * 32, p) for i, (v, p) in
                       enumerate(zip(IDS, (1, 2, 3, 4), strict=True)))
    cycle = weighted_round_robin(ValidatorSet(0, validators))
    assert len(cycle) == 10 and [cycle.count(v) for v in IDS] == [1, 2, 3, 4]


def test_reputation_gate_skips_a_leader_that_failed_recently(net):
    election = ReputationLeaderElection(net.validator_set, window=5, lag=2)
    failing = election.base_leader(7)
    election.record_committed(6, 8)  # view 7 produced nothing
    skipped_view = next(v for v in range(9, 40) if election.base_leader(v) == failing)
    assert election.leader(skipped_view) != failing
    late = next(v for v in range(40, 80) if election.base_leader(v) == failing)
    assert election.leader(late) == failing
