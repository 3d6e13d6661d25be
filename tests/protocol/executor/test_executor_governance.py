"""Governance: quorum approvals, pending changes, epoch boundary; audit anchors."""

from __future__ import annotations

import dataclasses

import pytest

from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import active_validator_set
from cybermesh.protocol.executor.events import (
    AuditAnchored,
    ParametersChanged,
    ValidatorSetChanged,
)
from cybermesh.protocol.executor.events import IgnoreReason as Ig
from cybermesh.protocol.executor.governance import MAX_PENDING
from cybermesh.protocol.txs import Approval, GovernanceOperation, ParameterName, approval_domain
from tests.protocol.executor.executor_chain import PARAMETERS, Chain, genesis, ignored, of_type
from tests.protocol.txs.tx_builders import CHAIN_ID, VALIDATOR_KEYS, anchor, governance, signed

pytestmark = pytest.mark.unit

Op = GovernanceOperation


def _finish_epoch(chain: Chain) -> list[object]:
    events: list[object] = []
    epoch = chain.state.chain.epoch
    while chain.state.chain.epoch == epoch:
        events.extend(chain.block().events)
    return events


def _apply(chain: Chain, change: object, nonce: int = 1) -> list[Ig]:
    return ignored(chain.block([signed(change, nonce=nonce, created_at_ms=chain.now_ms)]).events)


def test_approved_change_waits_for_the_next_epoch() -> None:
    chain = Chain()
    assert _apply(chain, governance(Op.CHANGE_POWER, validator_id="validator-1", power=25)) == []
    assert active_validator_set(chain.state).get("validator-1").power == 10  # type: ignore[union-attr]
    events = _finish_epoch(chain)
    [changed] = of_type(events, ValidatorSetChanged)
    assert changed.epoch == 1 and changed.effective_height == chain.state.height + 1
    assert ("validator-1", VALIDATOR_KEYS[1].public_key.raw, 25) in changed.validators
    assert active_validator_set(chain.state).get("validator-1").power == 25  # type: ignore[union-attr]
    assert chain.state.pending.changes == ()


@pytest.mark.parametrize("operation", list(Op))
def test_every_operation_applies_at_the_boundary(operation: Op) -> None:
    chain = Chain()
    assert _apply(chain, governance(operation)) == []
    events = _finish_epoch(chain)
    if operation is Op.CHANGE_PARAMETER:
        [changed] = of_type(events, ParametersChanged)
        assert changed.changed == (("quarantine_duration_ms", 7_200_000),)
        assert chain.state.parameters.quarantine_duration_ms == 7_200_000
    else:
        assert len(of_type(events, ValidatorSetChanged)) == 1


def test_two_thirds_of_the_power_is_needed() -> None:
    chain = Chain()
    assert _apply(chain, governance(signers=[0, 1])) == [Ig.NO_QUORUM]


def test_a_forged_or_foreign_approval_refuses_the_change() -> None:
    chain = Chain()
    change = governance()
    forged = dataclasses.replace(change, approvals=(
        *change.approvals[:2], Approval("validator-2", b"\x01" * 64)))
    assert _apply(chain, forged) == [Ig.BAD_APPROVAL]
    outsider = SigningKey.from_seed(b"\x55" * 32)
    stranger = dataclasses.replace(change, approvals=(
        *change.approvals, Approval("validator-x", outsider.sign(
            approval_domain(CHAIN_ID), change.approval_message()))))
    assert _apply(chain, stranger, nonce=2) == [Ig.BAD_APPROVAL]


def test_approvals_for_another_change_do_not_transfer() -> None:
    chain = Chain()
    change = governance(Op.CHANGE_POWER, power=25)
    other = governance(Op.CHANGE_POWER, power=99)
    assert _apply(chain, dataclasses.replace(other, approvals=change.approvals)) == [
        Ig.BAD_APPROVAL]


def test_approvals_are_only_good_in_their_epoch() -> None:
    chain = Chain()
    _finish_epoch(chain)
    assert _apply(chain, governance(epoch=0)) == [Ig.WRONG_EPOCH]
    assert _apply(chain, governance(epoch=1), nonce=2) == []


def test_the_same_change_is_pending_once() -> None:
    chain = Chain()
    assert _apply(chain, governance()) == []
    assert _apply(chain, governance(), nonce=2) == [Ig.DUPLICATE_CHANGE]


def _long_epoch_chain() -> Chain:
    return Chain(genesis(dataclasses.replace(PARAMETERS, epoch_length_blocks=1000)))


def test_changes_are_checked_against_those_pending_before_them() -> None:
    chain = _long_epoch_chain()
    assert _apply(chain, governance(Op.REMOVE_VALIDATOR, validator_id="validator-3")) == []
    # With min_validators = 3, a second removal would leave only 2.
    assert _apply(chain, governance(Op.REMOVE_VALIDATOR, validator_id="validator-2"),
                  nonce=2) == [Ig.INVALID_CHANGE]
    assert _apply(chain, governance(Op.CHANGE_POWER, validator_id="validator-3"),
                  nonce=3) == [Ig.INVALID_CHANGE]
    assert _apply(chain, governance(Op.ADD_VALIDATOR, validator_id="validator-0"),
                  nonce=4) == [Ig.INVALID_CHANGE]
    assert _apply(chain, governance(Op.ROTATE_KEY, validator_id="validator-1",
                                    public_key=VALIDATOR_KEYS[0].public_key.raw),
                  nonce=5) == [Ig.INVALID_CHANGE]
    assert _apply(chain, governance(Op.CHANGE_PARAMETER,
                                    parameter=ParameterName.REPUTATION_HALF_LIFE_MS, value=1000),
                  nonce=6) == [Ig.INVALID_CHANGE]


def test_pending_changes_are_bounded() -> None:
    chain = _long_epoch_chain()
    for power in range(1, MAX_PENDING + 1):
        assert _apply(chain, governance(power=power), nonce=power) == []
    assert _apply(chain, governance(power=MAX_PENDING + 1), nonce=999) == [
        Ig.TOO_MANY_PENDING]
    _finish_epoch(chain)
    assert active_validator_set(chain.state).get("validator-1").power == MAX_PENDING  # type: ignore[union-attr]


def test_rotated_key_is_the_one_the_next_epoch_uses() -> None:
    chain = Chain()
    new_key = SigningKey.from_seed(b"\x77" * 32).public_key.raw
    assert _apply(chain, governance(Op.ROTATE_KEY, validator_id="validator-2")) == []
    _finish_epoch(chain)
    assert active_validator_set(chain.state).get("validator-2").public_key == new_key  # type: ignore[union-attr]
    # Approvals made with the old key no longer count.
    assert _apply(chain, governance(epoch=1, signers=[0, 1, 2])) == [Ig.BAD_APPROVAL]
    assert _apply(chain, governance(epoch=1, signers=[0, 1, 3]), nonce=2) == []


def test_anchor_advances_and_is_bound_to_the_validator_key() -> None:
    chain = Chain()
    first = signed(anchor(audit_seq=10), created_at_ms=chain.now_ms)
    [anchored] = of_type(chain.block([first]).events, AuditAnchored)
    assert (anchored.validator_id, anchored.audit_seq) == ("validator-0", 10)
    stale = signed(anchor(audit_seq=10), nonce=2, created_at_ms=chain.now_ms)
    assert ignored(chain.block([stale]).events) == [Ig.STALE_ANCHOR]
    impostor = signed(anchor(audit_seq=11), key=VALIDATOR_KEYS[1], producer_id="validator-0",
                      nonce=3, created_at_ms=chain.now_ms)
    assert ignored(chain.block([impostor]).events) == [Ig.UNAUTHORIZED]
    unknown = signed(anchor("validator-42", 1), key=VALIDATOR_KEYS[1], nonce=4,
                     producer_id="validator-42", created_at_ms=chain.now_ms)
    assert ignored(chain.block([unknown]).events) == [Ig.UNKNOWN_VALIDATOR]
