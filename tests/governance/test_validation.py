"""The command-line checks mirror the executor: what they accept the executor schedules, what
they refuse the executor ignores for the same reason (pure: states built in memory)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from apps.governance.errors import GovernanceError, GovernanceProblem
from apps.governance.proposals import Proposal, new_change
from apps.governance.queries import GovernanceView
from apps.governance.services import approve
from apps.governance.validation import check_change, diagnose, pending_form, tally
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import BlockContext, ExecutorParameters, State, apply_block
from cybermesh.protocol.executor.events import TxIgnored
from cybermesh.protocol.executor.genesis import genesis_state
from cybermesh.protocol.executor.records import PendingRecord
from cybermesh.protocol.txs import sign_transaction
from cybermesh.protocol.txs.governance import (
    Approval,
    GovernanceOperation,
    ParameterName,
    approval_domain,
)
from cybermesh.protocol.validator_set import Validator

pytestmark = pytest.mark.unit

CHAIN = "governance-unit"
T0 = 1_700_000_000_000
KEYS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]
PRODUCER = SigningKey.from_seed(bytes([42]) * 32)
_Op = GovernanceOperation


def genesis(powers: tuple[int, ...] = (1, 1, 1, 1)) -> State:
    return genesis_state(chain_id=CHAIN, genesis_time_ms=T0, validators=[
        Validator(f"v{index}", KEYS[index].public_key.raw, power, f"127.0.0.1:{7000 + index}")
        for index, power in enumerate(powers)], parameters=ExecutorParameters())


def view_of(state: State) -> GovernanceView:
    return GovernanceView(version=state.height, chain=state.chain, parameters=state.parameters,
                          validators=state.validators, pending=state.pending)


def parameter_proposal(value: int = 60_000, epoch: int = 0) -> Proposal:
    return Proposal.of(new_change(_Op.CHANGE_PARAMETER, epoch=epoch,
                                  parameter=ParameterName.TX_MAX_FUTURE_MS, value=value),
                       chain_id=CHAIN)


def approved_by(proposal: Proposal, state: State, *indexes: int) -> Proposal:
    """Approvals signed directly (``services.approve`` would refuse an invalid change first)."""
    for index in indexes:
        signature = KEYS[index].sign(approval_domain(CHAIN), proposal.message)
        proposal = proposal.with_approval(Approval(f"v{index}", signature))
    return proposal


def executor_verdict(state: State, proposal: Proposal) -> str | None:
    """What apply_block does with the proposal's transaction: None if it is now pending."""
    transaction = sign_transaction(PRODUCER, proposal.signed_change(), chain_id=CHAIN,
                                   producer_id="ops", nonce=1, created_at_ms=T0 + 500)
    _, events, _ = apply_block(state, BlockContext(state.height + 1, T0 + 1000), [transaction])
    ignored = [event.reason.value for event in events if isinstance(event, TxIgnored)]
    return ignored[0] if ignored else None


def test_a_proposal_the_checks_accept_is_scheduled_by_the_executor() -> None:
    state = genesis()
    proposal = approved_by(parameter_proposal(), state, 0, 1, 2)
    assert diagnose(view_of(state), proposal) is None
    assert executor_verdict(state, proposal) is None


@pytest.mark.parametrize("case", ["no_quorum", "wrong_epoch", "bad_approval", "invalid_change",
                                  "duplicate_change", "wrong_chain"])
def test_the_checks_refuse_what_the_executor_ignores_for_the_same_reason(case: str) -> None:
    state = genesis()
    proposal = approved_by(parameter_proposal(), state, 0, 1, 2)
    if case == "no_quorum":
        proposal = approved_by(parameter_proposal(), state, 0, 1)
    elif case == "wrong_epoch":
        proposal = approved_by(parameter_proposal(epoch=0), state, 0, 1, 2)
        state = State.from_entries(state.entries())
        moved = replace(state.chain, epoch=1)
        state = _with_chain(state, moved)
    elif case == "bad_approval":
        other = approved_by(parameter_proposal(value=70_000), state, 2)
        proposal = replace(approved_by(parameter_proposal(), state, 0, 1),
                           approvals=(*proposal.approvals[:2], other.approvals[0]))
    elif case == "invalid_change":
        proposal = approved_by(Proposal.of(new_change(_Op.REMOVE_VALIDATOR, epoch=0,
                                                      validator_id="v3"), chain_id=CHAIN),
                               state, 0, 1, 2)
    elif case == "duplicate_change":
        pending = PendingRecord((pending_form(proposal.change, height=1, index=0),))
        state = _with_pending(state, pending)
    else:
        proposal = replace(proposal, chain_id="another-chain")
    expected = "wrong_chain" if case == "wrong_chain" else case
    assert diagnose(view_of(state), proposal) == expected
    if case != "wrong_chain":  # another chain's approvals never verify here at all
        assert executor_verdict(state, proposal) == expected


def _with_chain(state: State, chain: object) -> State:
    from cybermesh.protocol.executor.keys import CHAIN_KEY
    from cybermesh.protocol.executor.records import encode_record
    entries = state.entries()
    entries[CHAIN_KEY] = encode_record(chain)  # type: ignore[arg-type]
    return State.from_entries(entries)


def _with_pending(state: State, pending: PendingRecord) -> State:
    from cybermesh.protocol.executor.keys import PENDING_KEY
    from cybermesh.protocol.executor.records import encode_record
    entries = state.entries()
    entries[PENDING_KEY] = encode_record(pending)
    return State.from_entries(entries)


def test_the_tally_weighs_approvals_by_voting_power() -> None:
    state = genesis(powers=(1, 1, 1, 3))  # total 6, f = 1, quorum 5
    counted = tally(view_of(state), approved_by(parameter_proposal(), state, 3, 0))
    assert (counted.power, counted.quorum_power, counted.has_quorum) == (4, 5, False)
    assert counted.missing == ("v1", "v2")
    counted = tally(view_of(state), approved_by(parameter_proposal(), state, 3, 0, 2))
    assert counted.has_quorum and counted.approvers == ("v0", "v2", "v3")


def test_an_approval_over_another_change_does_not_count() -> None:
    state = genesis()
    signed_other = approved_by(parameter_proposal(value=1), state, 1)
    forged = replace(parameter_proposal(), approvals=signed_other.approvals)
    with pytest.raises(GovernanceError) as raised:
        tally(view_of(state), forged)
    assert raised.value.problem is GovernanceProblem.BAD_APPROVAL
    assert "does not verify" in str(raised.value)


def test_approving_signs_with_the_validators_own_key_only() -> None:
    state = genesis()
    approved = approve(parameter_proposal(), view=view_of(state), signing_key=KEYS[1],
                       validator_id="v1")
    assert tally(view_of(state), approved).approvers == ("v1",)
    with pytest.raises(GovernanceError) as raised:
        approve(parameter_proposal(), view=view_of(state), signing_key=KEYS[1],
                validator_id="v2")
    assert raised.value.problem is GovernanceProblem.KEY


def test_too_many_pending_changes_are_refused() -> None:
    state = genesis()
    pending = PendingRecord(tuple(
        pending_form(parameter_proposal(value=1000 + index).change, height=1, index=index)
        for index in range(64)))
    with pytest.raises(GovernanceError) as raised:
        check_change(view_of(_with_pending(state, pending)), parameter_proposal())
    assert raised.value.problem is GovernanceProblem.TOO_MANY_PENDING


def test_a_change_valid_alone_is_refused_after_a_pending_one_it_conflicts_with() -> None:
    state = genesis()
    add = Proposal.of(new_change(_Op.ADD_VALIDATOR, epoch=0, validator_id="v4",
                                 public_key=PRODUCER.public_key.raw, power=1,
                                 address="127.0.0.1:7004"), chain_id=CHAIN)
    check_change(view_of(state), add)
    again = Proposal.of(new_change(_Op.ADD_VALIDATOR, epoch=0, validator_id="v5",
                                   public_key=PRODUCER.public_key.raw, power=1,
                                   address="127.0.0.1:7005"), chain_id=CHAIN)
    busy = _with_pending(state, PendingRecord((pending_form(add.change, height=1),)))
    with pytest.raises(GovernanceError, match="public key is already registered"):
        check_change(view_of(busy), again)
