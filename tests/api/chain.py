"""A chain with chosen policy transactions, run by the real executor (quarantines and rules
that are certainly in the state, unlike the random chain of ``tests.ledger.chain``)."""

from __future__ import annotations

from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.state.execution import execute_block, genesis_execution
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, genesis_qc
from cybermesh.protocol.executor import StateRootTracker, genesis_state
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
from cybermesh.protocol.txs import (
    Entity,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    Transaction,
    sign_transaction,
)
from tests.ledger.chain import GENESIS_TIME_MS, PRODUCER_KEY, ChainBuilder, CommittedItem

QUARANTINED_IP = "198.51.100.200"
DENIED_CIDR = "203.0.113.0/24"
DAY_MS = 24 * 3600 * 1000


def policy_transactions(chain_id: str, now_ms: int) -> list[Transaction]:
    changes = [
        PolicyChange(PolicyOperation.QUARANTINE, Entity.of("ip", QUARANTINED_IP), "worm",
                     expires_at_ms=now_ms + DAY_MS),
        PolicyChange(PolicyOperation.SET_RULE, Entity.of("cidr", DENIED_CIDR), "botnet",
                     scope="ingress", action=PolicyAction.DENY, expires_at_ms=now_ms + DAY_MS),
        PolicyChange(PolicyOperation.SET_RULE, Entity.of("host", "updates.example.org"),
                     "vendor", scope="egress", action=PolicyAction.ALLOW,
                     expires_at_ms=now_ms + DAY_MS),
    ]
    return [sign_transaction(PRODUCER_KEY, change, chain_id=chain_id, producer_id="ai-1",
                             nonce=index + 1, created_at_ms=now_ms - 100)
            for index, change in enumerate(changes)]


def policy_chain(builder: ChainBuilder, count: int = 4) -> list[CommittedItem]:
    """Genesis, then block 1 with the policy transactions, then empty blocks."""
    state = genesis_state(chain_id=builder.chain_id, genesis_time_ms=GENESIS_TIME_MS,
                          validators=builder.validator_set.validators)
    tracker = StateRootTracker(state)
    genesis = Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="",
                    timestamp_ms=GENESIS_TIME_MS, payload=encode_payload([]),
                    tx_root=compute_tx_root(()), state_root=EMPTY_HASH,
                    validator_set_hash=builder.validator_set.digest(),
                    qc=genesis_qc(0, ZERO_HASH, 0))
    root_qc = genesis_qc(0, genesis.block_id, 0)
    items = [CommittedItem(genesis, root_qc, genesis_execution(state), tracker.root())]
    parent, parent_qc = genesis, root_qc
    for height in range(1, count):
        now_ms = GENESIS_TIME_MS + height * 1000
        transactions = policy_transactions(builder.chain_id, now_ms) if height == 1 else []
        payload = encode_payload(tx.wire for tx in transactions)
        block = Block(epoch=0, view=height, height=height, parent_id=parent.block_id,
                      proposer=f"v{height % builder.validators}", timestamp_ms=now_ms,
                      payload=payload, tx_root=compute_tx_root(decode_payload(payload) or ()),
                      state_root=tracker.root(),
                      validator_set_hash=builder.validator_set.digest(), qc=parent_qc)
        executed = execute_block(state, block)
        root, _ = tracker.apply({u.key: u.value for u in executed.execution.state_updates},
                                height)
        qc = builder.sign_qc(block)
        items.append(CommittedItem(block, qc, executed.execution, root))
        state, parent, parent_qc = executed.state, block, qc
    return items
