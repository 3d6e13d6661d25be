"""A live test chain for the console: real signed blocks, executed and committed through the
ledger as a node would, with block times at the wall clock (so transactions the console signs
now are fresh for the executor and the mempool).

``LiveChain.commit(...)`` builds the next block on the committed tip (state root of the parent
read from the database, the parent's commit QC as its justify QC), signs a QC with the four
test validators, and commits it with ``commit_with_executor``. ``commit_mempool()`` does what a
leader does with this node's mempool: puts its transactions in a block and, once committed,
removes them from the pool.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.ledger.records import CommitOutcome
from apps.ledger.rows import load_block
from apps.mempool.models import MempoolTransaction
from apps.mempool.services import remove_committed
from apps.state.execution import LedgerExecutor, commit_genesis, commit_with_executor
from apps.state.models import StateVersion
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, genesis_qc
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import genesis_state
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
from cybermesh.protocol.txs import (
    Artifact,
    Category,
    CustodyAction,
    CustodyEntry,
    Entity,
    Evidence,
    EvidenceKind,
    SecurityEvent,
    Transaction,
    sign_transaction,
)
from tests.ledger.chain import ChainBuilder

CHAIN_ID = "console-test"
AI_PRODUCER = SigningKey.from_seed(bytes([0x33]) * 32)
AI_PRODUCER_ID = "ai-detector-1"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class LiveChain:
    builder: ChainBuilder = field(default_factory=lambda: ChainBuilder(chain_id=CHAIN_ID))
    nonce: int = 0

    def __post_init__(self) -> None:
        self.genesis_ms = wall_ms() - 60_000
        self.state = genesis_state(chain_id=CHAIN_ID, genesis_time_ms=self.genesis_ms,
                                   validators=self.builder.validator_set.validators)
        genesis = Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="",
                        timestamp_ms=self.genesis_ms, payload=encode_payload([]),
                        tx_root=compute_tx_root(()), state_root=EMPTY_HASH,
                        validator_set_hash=self.builder.validator_set.digest(),
                        qc=genesis_qc(0, ZERO_HASH, 0))
        commit_genesis(state=self.state, block=genesis, qc=genesis_qc(0, genesis.block_id, 0),
                       snapshot_interval=1000)
        self.executor = LedgerExecutor(self.state)
        self.height = 0

    def commit(self, wires: Sequence[bytes] = ()) -> CommitOutcome:
        parent, parent_qc = load_block(self.height)  # type: ignore[misc]
        height = self.height + 1
        payload = encode_payload(wires)
        root = bytes(StateVersion.objects.get(version=self.height).root_hash)
        block = Block(epoch=0, view=height, height=height, parent_id=parent.block_id,
                      proposer=f"v{height % self.builder.validators}",
                      timestamp_ms=max(wall_ms(), parent.timestamp_ms + 1), payload=payload,
                      tx_root=compute_tx_root(decode_payload(payload) or ()), state_root=root,
                      validator_set_hash=self.builder.validator_set.digest(), qc=parent_qc)
        outcome = commit_with_executor(executor=self.executor, block=block,
                                       qc=self.builder.sign_qc(block), snapshot_interval=1000)
        self.height = height
        return outcome

    def commit_mempool(self) -> list[bytes]:
        """A block with every transaction of this node's mempool (best first); returns ids."""
        rows = list(MempoolTransaction.objects.order_by("-priority", "tx_id")
                    .values_list("tx_id", "wire"))
        self.commit([bytes(wire) for _, wire in rows])
        ids = [bytes(tx_id) for tx_id, _ in rows]
        if ids:
            remove_committed(ids)
        return ids

    # --- what the AI layer would publish -------------------------------------------------

    def event(self, offender: str, *, severity: int = 8, category: str = "brute_force",
              kind: str = "ip") -> Transaction:
        self.nonce += 1
        now = wall_ms()
        payload = SecurityEvent(source="sensor-eu-1", offender=Entity.of(kind, offender),
                                category=Category(category), severity=severity,
                                confidence_bps=9000, observed_at_ms=now - 500,
                                detector="suricata-7", payload_ref="f" * 64)
        return sign_transaction(AI_PRODUCER, payload, chain_id=CHAIN_ID,
                                producer_id=AI_PRODUCER_ID, nonce=self.nonce,
                                created_at_ms=now - 100)

    def evidence(self, supports: Sequence[bytes]) -> Transaction:
        self.nonce += 1
        now = wall_ms()
        payload = Evidence(EvidenceKind.ARTIFACTS,
                           artifacts=(Artifact(sha256(f"pcap/{self.nonce}".encode()),
                                               "application/vnd.tcpdump.pcap", 4096),),
                           custody=(CustodyEntry("sensor-eu-1", CustodyAction.COLLECTED,
                                                 now - 400),),
                           supports=tuple(sorted(supports)))
        return sign_transaction(AI_PRODUCER, payload, chain_id=CHAIN_ID,
                                producer_id=AI_PRODUCER_ID, nonce=self.nonce,
                                created_at_ms=now - 100)
