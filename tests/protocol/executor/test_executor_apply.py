"""apply_block: preconditions, the per-transaction gate, purity, updates, ignore reasons."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from cybermesh.protocol.executor import BlockContext, ExecutorError, apply_block, state_root
from cybermesh.protocol.executor.events import IgnoreReason, TxIgnored
from cybermesh.protocol.executor.governance import MAX_PENDING
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.txs import Entity, GovernanceOperation, PolicyOperation
from tests.protocol.executor.executor_chain import PARAMETERS, Chain, event_tx, genesis, ignored
from tests.protocol.txs.tx_builders import (
    VALIDATOR_KEYS,
    anchor,
    equivocation,
    governance,
    policy,
    release,
    signed,
)

pytestmark = pytest.mark.unit


def test_block_must_be_the_next_height() -> None:
    state = genesis()
    with pytest.raises(ExecutorError):
        apply_block(state, BlockContext(2, state.chain.timestamp_ms + 1), [])


def test_block_time_must_not_go_backwards() -> None:
    state = genesis()
    with pytest.raises(ExecutorError):
        apply_block(state, BlockContext(1, state.chain.timestamp_ms - 1), [])


def test_apply_leaves_the_input_state_untouched() -> None:
    chain = Chain()
    before = chain.state
    entries = before.entries()
    txs = [event_tx(nonce=n, created_at_ms=chain.now_ms) for n in range(6)]
    first = apply_block(before, BlockContext(1, chain.now_ms + 1000), txs)
    second = apply_block(before, BlockContext(1, chain.now_ms + 1000), txs)
    assert before.entries() == entries
    assert first[1] == second[1] and first[2] == second[2]
    assert first[0].entries() == second[0].entries()


def test_updates_are_sorted_and_turn_the_old_root_into_the_new() -> None:
    chain = Chain()
    step = chain.block([event_tx(nonce=n, created_at_ms=chain.now_ms) for n in range(3)])
    assert list(step.updates) == sorted(step.updates)
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    _, batch = tree.apply(None, genesis().entries(), 0)
    store.write_batch(batch)
    root, _ = tree.apply(0, step.updates, 1)
    assert root == state_root(step.state) == chain.root()


def test_a_block_without_transactions_still_moves_the_chain() -> None:
    chain = Chain()
    before = chain.root()
    step = chain.block()
    assert step.state.height == 1 and chain.root() != before


def _stale(chain: Chain) -> list[IgnoreReason]:
    old = event_tx(created_at_ms=chain.now_ms + 1000 - PARAMETERS.tx_max_age_ms - 1)
    return ignored(chain.block([old]).events)


def _future(chain: Chain) -> list[IgnoreReason]:
    ahead = event_tx(created_at_ms=chain.now_ms + 1000 + PARAMETERS.tx_max_future_ms + 1)
    return ignored(chain.block([ahead]).events)


def _duplicate_in_block(chain: Chain) -> list[IgnoreReason]:
    tx = event_tx(created_at_ms=chain.now_ms)
    return ignored(chain.block([tx, tx]).events)


def _duplicate_in_later_block(chain: Chain) -> list[IgnoreReason]:
    tx = signed(policy(expires_at_ms=chain.now_ms + 60_000), created_at_ms=chain.now_ms)
    chain.block([tx])
    return ignored(chain.block([tx]).events)


def _wrong_chain(chain: Chain) -> list[IgnoreReason]:
    tx = signed(policy(expires_at_ms=chain.now_ms + 60_000), created_at_ms=chain.now_ms,
                chain_id="another-chain")
    return ignored(chain.block([tx]).events)


def _already_expired(chain: Chain) -> list[IgnoreReason]:
    tx = signed(policy(expires_at_ms=chain.now_ms + 10), created_at_ms=chain.now_ms)
    return ignored(chain.block([tx]).events)


def _rule_not_found(chain: Chain) -> list[IgnoreReason]:
    tx = signed(policy(operation=PolicyOperation.REMOVE_RULE, expires_at_ms=None),
                created_at_ms=chain.now_ms)
    return ignored(chain.block([tx]).events)


def _not_quarantined(chain: Chain) -> list[IgnoreReason]:
    tx = signed(release(Entity.of("ip", "192.0.2.1")), created_at_ms=chain.now_ms)
    return ignored(chain.block([tx]).events)


def _unknown_validator(chain: Chain) -> list[IgnoreReason]:
    tx = signed(equivocation("validator-99"), created_at_ms=chain.now_ms)
    return ignored(chain.block([tx]).events)


def _duplicate_evidence(chain: Chain) -> list[IgnoreReason]:
    txs = [signed(equivocation(), nonce=n, created_at_ms=chain.now_ms) for n in (1, 2)]
    return ignored(chain.block(txs).events)


def _unauthorized(chain: Chain) -> list[IgnoreReason]:
    tx = signed(anchor(), key=VALIDATOR_KEYS[3], producer_id="validator-0",
                created_at_ms=chain.now_ms)
    return ignored(chain.block([tx]).events)


def _stale_anchor(chain: Chain) -> list[IgnoreReason]:
    txs = [signed(anchor(audit_seq=5), nonce=n, created_at_ms=chain.now_ms) for n in (1, 2)]
    return ignored(chain.block(txs).events)


def _gov(chain: Chain, change: object, nonce: int = 1) -> list[IgnoreReason]:
    return ignored(chain.block([signed(change, nonce=nonce, created_at_ms=chain.now_ms)]).events)


def _too_many_pending(chain: Chain) -> list[IgnoreReason]:
    txs = [signed(governance(power=power), nonce=power, created_at_ms=chain.now_ms)
           for power in range(1, MAX_PENDING + 2)]
    return ignored(chain.block(txs).events)


CASES: dict[IgnoreReason, Callable[[Chain], list[IgnoreReason]]] = {
    IgnoreReason.STALE: _stale,
    IgnoreReason.FROM_THE_FUTURE: _future,
    IgnoreReason.DUPLICATE: _duplicate_in_block,
    IgnoreReason.WRONG_CHAIN: _wrong_chain,
    IgnoreReason.ALREADY_EXPIRED: _already_expired,
    IgnoreReason.RULE_NOT_FOUND: _rule_not_found,
    IgnoreReason.NOT_QUARANTINED: _not_quarantined,
    IgnoreReason.UNKNOWN_VALIDATOR: _unknown_validator,
    IgnoreReason.DUPLICATE_EVIDENCE: _duplicate_evidence,
    IgnoreReason.UNAUTHORIZED: _unauthorized,
    IgnoreReason.STALE_ANCHOR: _stale_anchor,
    IgnoreReason.WRONG_EPOCH: lambda chain: _gov(chain, governance(epoch=3)),
    IgnoreReason.BAD_APPROVAL: lambda chain: _gov(chain, dataclasses.replace(
        governance(), approvals=governance(power=99).approvals)),
    IgnoreReason.NO_QUORUM: lambda chain: _gov(chain, governance(signers=[0])),
    IgnoreReason.DUPLICATE_CHANGE: lambda chain: ignored(chain.block(
        [signed(governance(), nonce=n, created_at_ms=chain.now_ms) for n in (1, 2)]).events),
    IgnoreReason.TOO_MANY_PENDING: _too_many_pending,
    IgnoreReason.INVALID_CHANGE: lambda chain: _gov(chain, governance(
        GovernanceOperation.REMOVE_VALIDATOR, validator_id="validator-77")),
}


@pytest.mark.parametrize("reason", list(CASES), ids=lambda reason: reason.value)
def test_each_ignore_reason_is_produced(reason: IgnoreReason) -> None:
    chain = Chain(genesis(dataclasses.replace(PARAMETERS, epoch_length_blocks=100)))
    assert CASES[reason](chain)[-1] is reason


def test_every_ignore_reason_has_a_case() -> None:
    assert set(CASES) == set(IgnoreReason)


def test_an_ignored_transaction_is_reported_with_its_index() -> None:
    chain = Chain()
    good = event_tx(created_at_ms=chain.now_ms)
    step = chain.block([good, good])
    [event] = [e for e in step.events if isinstance(e, TxIgnored)]
    assert (event.tx_id, event.index) == (good.tx_id, 1)


def test_a_replay_in_a_later_block_is_a_no_op_and_later_still_is_stale() -> None:
    chain = Chain(genesis(dataclasses.replace(PARAMETERS, epoch_length_blocks=100)))
    assert _duplicate_in_later_block(chain) == [IgnoreReason.DUPLICATE]
    tx = event_tx(created_at_ms=chain.now_ms)
    chain.block([tx])
    # After the remembered window the id is forgotten, but the age check refuses it.
    step = chain.block([tx], advance_ms=PARAMETERS.tx_max_age_ms + 2000)
    assert ignored(step.events) == [IgnoreReason.STALE]
