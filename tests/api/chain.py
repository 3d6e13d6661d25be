"""A chain with chosen policy transactions, run by the real executor (quarantines and rules
that are certainly in the state, unlike the random chain of ``tests.ledger.chain``)."""

from __future__ import annotations

from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.txs import (
    Entity,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    Transaction,
    sign_transaction,
)
from tests.ledger.chain import (
    GENESIS_TIME_MS,
    PRODUCER_KEY,
    ChainBuilder,
    CommittedItem,
    executed_chain_of,
)

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

    def content(height: int, parent: Block) -> tuple[int, list[Transaction]]:
        now_ms = GENESIS_TIME_MS + height * 1000
        return now_ms, (policy_transactions(builder.chain_id, now_ms) if height == 1 else [])

    return executed_chain_of(builder, count, content)
