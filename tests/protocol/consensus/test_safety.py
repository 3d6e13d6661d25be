import pytest

from cybermesh.protocol.consensus.errors import SafetyRuleViolation
from cybermesh.protocol.consensus.messages import TimeoutCert
from cybermesh.protocol.consensus.safety import Rule, SafetyData, SafetyRules

from .conftest import DOMAINS

pytestmark = pytest.mark.unit


def rules(net, disabled=frozenset(), data=None):
    return SafetyRules(validator_id="v01", signer=net.signers["v01"], domains=DOMAINS,
                       safety_data=data or SafetyData(epoch=0), disabled_rules=disabled)


def chain(net):
    b1 = net.block(1, net.genesis_qc)
    qc1 = net.qc_for(b1)
    b2 = net.block(2, qc1)
    return b1, qc1, b2, net.qc_for(b2)


def test_vote_for_the_next_view_is_signed_and_returns_data_to_persist(net):
    safety = rules(net)
    b1, *_ = chain(net)
    vote, data = safety.make_vote(b1, None)
    assert vote.view == 1 and data.last_voted_view == 1 and data.last_vote == vote


def test_repeated_request_returns_the_stored_vote_without_signing_again(net):
    safety = rules(net)
    b1, *_ = chain(net)
    first, _ = safety.make_vote(b1, None)
    again, data = safety.make_vote(b1, None)
    assert again is first and data is None


def test_second_block_in_a_voted_view_is_refused(net):
    safety = rules(net)
    b1, *_ = chain(net)
    safety.make_vote(b1, None)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.make_vote(net.block(1, net.genesis_qc, payload=b"other"), None)
    assert error.value.rule is Rule.VOTE_VIEW_MONOTONIC


def test_vote_is_refused_after_timeout_in_same_view(net):
    safety = rules(net)
    b1, qc1, b2, _ = chain(net)
    safety.make_vote(b1, None)
    safety.make_timeout(2, qc1, None)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.make_vote(b2, None)
    assert error.value.rule is Rule.VOTE_VIEW_MONOTONIC


def test_timeout_in_the_view_just_voted_in_is_allowed(net):
    safety = rules(net)
    b1, qc1, b2, _ = chain(net)
    safety.make_vote(b1, None)
    safety.make_vote(b2, None)
    timeout, data = safety.make_timeout(2, qc1, None)
    assert timeout.view == 2 and data.last_voted_view == 2 and data.highest_timeout_view == 2


def test_block_skipping_a_view_needs_a_tc_whose_qcs_it_extends(net):
    safety = rules(net)
    _b1, qc1, _, _ = chain(net)
    skip = net.block(3, qc1)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.make_vote(skip, None)
    assert error.value.rule is Rule.VOTE_EXTENDS_QC_OR_TC
    high_tc = TimeoutCert(0, 2, (("v00", 2, b"s" * 64),))
    with pytest.raises(SafetyRuleViolation):
        safety.make_vote(skip, high_tc)
    vote, _ = safety.make_vote(skip, TimeoutCert(0, 2, (("v00", 1, b"s" * 64),)))
    assert vote.view == 3


def test_timeout_must_follow_a_certificate_and_carry_the_lock(net):
    safety = rules(net)
    _b1, qc1, b2, qc2 = chain(net)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.make_timeout(3, qc1, None)
    assert error.value.rule is Rule.TIMEOUT_FOLLOWS_CERTIFICATE
    safety.make_vote(b2, None)  # lock becomes qc1's view (1)
    safety.make_timeout(3, qc2, None)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.make_timeout(2, net.genesis_qc, TimeoutCert(0, 1, ()))
    assert error.value.rule in (Rule.TIMEOUT_QC_AT_LEAST_LOCK, Rule.TIMEOUT_NOT_BELOW_LAST_VOTE)


def test_proposals_are_signed_once_per_view(net):
    safety = rules(net)
    b1, *_ = chain(net)
    safety.sign_proposal(b1)
    with pytest.raises(SafetyRuleViolation) as error:
        safety.sign_proposal(net.block(1, net.genesis_qc, payload=b"other"))
    assert error.value.rule is Rule.PROPOSAL_VIEW_MONOTONIC


REFUSALS = {
    Rule.VOTE_VIEW_MONOTONIC: lambda s, net, c: (s.make_vote(c[0], None),
                                                 s.make_vote(net.block(1, net.genesis_qc, b"o"),
                                                             None)),
    Rule.VOTE_EXTENDS_QC_OR_TC: lambda s, net, c: s.make_vote(net.block(3, c[1]), None),
    Rule.VOTE_TC_EXTENDS_HIGHEST_QC: lambda s, net, c: s.make_vote(
        net.block(3, c[1]), TimeoutCert(0, 2, (("v00", 2, b"s" * 64),))),
    Rule.TIMEOUT_FOLLOWS_CERTIFICATE: lambda s, net, c: s.make_timeout(3, c[1], None),
    Rule.TIMEOUT_QC_AT_LEAST_LOCK: lambda s, net, c: (
        s.make_vote(c[2], None), s.make_timeout(1, net.genesis_qc, None)),
    Rule.TIMEOUT_NOT_BELOW_LAST_VOTE: lambda s, net, c: (
        s.make_vote(c[2], None), s.make_timeout(2, c[1], None), s.make_timeout(2, c[1], None),
        s.make_timeout(1, net.genesis_qc, None)),
    Rule.EPOCH_MATCHES: lambda s, net, c: s.make_timeout(1, net.genesis_qc.__class__(
        5, 0, net.genesis.block_id, 0, ()), None),
    Rule.PROPOSAL_VIEW_MONOTONIC: lambda s, net, c: (s.sign_proposal(c[0]),
                                                     s.sign_proposal(c[0])),
}


@pytest.mark.parametrize("rule", list(REFUSALS), ids=lambda r: r.value)
def test_each_rule_refuses_and_disabling_it_lets_the_unsafe_signature_through(net, rule):
    with pytest.raises(SafetyRuleViolation):
        REFUSALS[rule](rules(net), net, chain(net))
    only_this_off = rules(net, disabled=frozenset({rule}))
    try:
        REFUSALS[rule](only_this_off, net, chain(net))
    except SafetyRuleViolation as error:
        assert error.rule is not rule


def test_timeout_raises_last_voted_view_unless_disabled(net):
    b1, qc1, *_ = chain(net)
    safety = rules(net)
    safety.make_vote(b1, None)
    assert safety.make_timeout(2, qc1, None)[1].last_voted_view == 2
    lax = rules(net, disabled=frozenset({Rule.TIMEOUT_RAISES_LAST_VOTED_VIEW}))
    lax.make_vote(b1, None)
    assert lax.make_timeout(2, qc1, None)[1].last_voted_view == 1


def test_safety_data_survives_persistence_and_resets_on_a_new_epoch(net):
    safety = rules(net)
    b1, *_ = chain(net)
    _, data = safety.make_vote(b1, None)
    assert SafetyData.from_bytes(data.to_bytes()) == data
    with pytest.raises(ValueError):
        SafetyData.from_bytes(b"\x00garbage")
    assert safety.start_epoch(1) == SafetyData(epoch=1)
