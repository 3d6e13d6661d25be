"""A signed test chain: real Ed25519 validators, QCs, payloads and state roots.

The builder executes each block with a small deterministic rule set (:func:`updates_for`) on
an *in-memory* sparse Merkle tree to fill the next header's ``state_root``, so a database that
commits these blocks must reproduce the in-memory roots exactly, or the commit is refused.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.ledger.records import BlockExecution, StateUpdate
from apps.state.keys import state_key_hash
from cybermesh.protocol.consensus.messages import (
    ZERO_HASH,
    Block,
    QuorumCert,
    block_statement,
    genesis_qc,
)
from cybermesh.protocol.consensus.signatures import Domains
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import StateRootTracker, genesis_state
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
from cybermesh.protocol.txs import (
    Artifact,
    Category,
    CustodyAction,
    CustodyEntry,
    Entity,
    Evidence,
    EvidenceKind,
    PolicyAction,
    PolicyChange,
    PolicyOperation,
    SecurityEvent,
    Transaction,
    sign_transaction,
)
from cybermesh.protocol.validator_set import Validator, ValidatorSet

CHAIN_ID = "ledger-test"


def updates_for(height: int, payload: bytes) -> tuple[StateUpdate, ...]:
    """A deterministic toy execution: every tx is recorded, every third block forgets the
    oldest tx of the block before, a per-block counter is overwritten."""
    transactions = decode_payload(payload) or ()
    updates = [StateUpdate(state_key_hash("tx", record.tx_id), record.content_hash, "tx")
               for record in transactions]
    updates.append(StateUpdate(state_key_hash("meta", b"height"), height.to_bytes(8, "big")))
    if height % 3 == 0 and height > 1:
        oldest = (decode_payload(_payload(height - 1, 1)) or ())[0].tx_id
        updates.append(StateUpdate(state_key_hash("tx", oldest), None, "tx"))
    return tuple(updates)


def _tx(height: int, index: int, salt: int = 0) -> bytes:
    return sha256(f"tx/{height}/{index}/{salt}".encode()) + bytes([index % 256]) * 40


def _payload(height: int, count: int, salt: int = 0) -> bytes:
    return encode_payload(_tx(height, index, salt) for index in range(count))


@dataclass
class CommittedItem:
    block: Block
    qc: QuorumCert
    execution: BlockExecution
    state_root: bytes  # after executing this block


@dataclass
class ChainBuilder:
    validators: int = 4
    chain_id: str = CHAIN_ID
    txs_per_block: int = 3
    keys: list[SigningKey] = field(init=False)
    validator_set: ValidatorSet = field(init=False)

    def __post_init__(self) -> None:
        self.keys = [SigningKey.from_seed(bytes([index + 1]) * 32)
                     for index in range(self.validators)]
        self.validator_set = ValidatorSet(0, tuple(
            Validator(validator_id=f"v{index}", public_key=key.public_key.raw, power=1,
                      address=f"127.0.0.1:{7000 + index}")
            for index, key in enumerate(self.keys)))
        self.domains = Domains.for_chain(self.chain_id)

    def sign_qc(self, block: Block, signers: Sequence[int] | None = None) -> QuorumCert:
        chosen = signers if signers is not None else range(self.validators)
        statement = block_statement(block.epoch, block.view, block.block_id, block.height)
        signatures = sorted((f"v{index}", self.keys[index].sign(self.domains.vote, statement))
                            for index in chosen)
        return QuorumCert(epoch=block.epoch, view=block.view, block_id=block.block_id,
                          height=block.height, signatures=tuple(signatures))

    def payload(self, height: int, count: int, salt: int = 0) -> bytes:
        return _payload(height, count, salt)

    def build(self, count: int, *, txs_per_block: int | None = None, salt: int = 0,
              seed: int | None = None) -> list[CommittedItem]:
        """Blocks 0..count-1: block 0 is the epoch root (its QC is the genesis QC)."""
        per_block = self.txs_per_block if txs_per_block is None else txs_per_block
        rng = random.Random(seed) if seed is not None else None
        items: list[CommittedItem] = []
        store = InMemoryNodeStore()
        tree = SparseMerkleTree(store)
        parent_id, parent_root, parent_qc = ZERO_HASH, EMPTY_HASH, None
        previous_version: int | None = None
        for height in range(count):
            tx_count = rng.randrange(0, 2 * per_block + 1) if rng else per_block
            payload = self.payload(height, tx_count, salt)
            records = decode_payload(payload) or ()
            view = height  # one view per block: the 2-chain commits every block
            justify = parent_qc if parent_qc is not None else genesis_qc(0, ZERO_HASH, 0)
            block = Block(epoch=0, view=view, height=height, parent_id=parent_id,
                          proposer=f"v{height % self.validators}",
                          timestamp_ms=1_700_000_000_000 + height * 1000, payload=payload,
                          tx_root=compute_tx_root(records), state_root=parent_root,
                          validator_set_hash=self.validator_set.digest(), qc=justify)
            qc = (genesis_qc(0, block.block_id, 0) if height == 0
                  else self.sign_qc(block))
            updates = updates_for(height, payload)
            root, batch = tree.apply(
                previous_version,
                {u.key: u.value for u in updates}, height)
            store.write_batch(batch)
            items.append(CommittedItem(block, qc, BlockExecution(state_updates=updates), root))
            parent_id, parent_root, parent_qc = block.block_id, root, qc
            previous_version = height
        return items


# --- a chain executed by the real executor (cybermesh.protocol.executor) ----------------------

GENESIS_TIME_MS = 1_700_000_000_000
PRODUCER_KEY = SigningKey.from_seed(bytes.fromhex("42" * 32))


def _transactions(rng: random.Random, height: int, now_ms: int, count: int,
                  chain_id: str) -> list[Transaction]:
    """Security events against a small pool of offenders (so reputations fall, quarantines
    trigger and expire), policy rules that come and go, and artifact evidence."""
    transactions: list[Transaction] = []
    for index in range(count):
        nonce = height * 1000 + index
        roll = rng.random()
        offender = Entity.of("ip", f"198.51.100.{rng.randrange(12)}")
        if roll < 0.7:
            payload: object = SecurityEvent(
                source="sensor-1", offender=offender,
                category=rng.choice(list(Category)), severity=rng.randint(1, 10),
                confidence_bps=rng.randint(0, 10_000), observed_at_ms=now_ms - 1000,
                detector="det/1", payload_ref="f" * 64)
        elif roll < 0.9:
            payload = PolicyChange(PolicyOperation.SET_RULE, offender, "soc decision",
                                   scope="ingress",
                                   action=rng.choice([PolicyAction.DENY, PolicyAction.ALLOW]),
                                   expires_at_ms=now_ms + rng.randint(2, 40) * 1000)
        else:
            payload = Evidence(EvidenceKind.ARTIFACTS,
                               artifacts=(Artifact(sha256(bytes([index])), "text/plain", 10),),
                               custody=(CustodyEntry("sensor-1", CustodyAction.COLLECTED,
                                                     now_ms - 1000),),
                               supports=(sha256(f"unknown/{nonce}".encode()),))
        transactions.append(sign_transaction(
            PRODUCER_KEY, payload, chain_id=chain_id,  # type: ignore[arg-type]
            producer_id="ai-1", nonce=nonce, created_at_ms=now_ms - rng.randint(0, 500)))
    return transactions


# What a block at ``height`` on top of ``parent`` carries: its time and its transactions.
BlockContent = Callable[[int, Block], tuple[int, list[Transaction]]]


def executed_chain_of(builder: ChainBuilder, count: int,
                      content: BlockContent) -> list[CommittedItem]:
    """Genesis block 0 (the genesis state) and blocks 1..count-1 with ``content``, executed by
    apply_block. Each header carries the parent's state root from the executor's own
    in-memory tree, so a database that commits them must reproduce those roots."""
    from apps.state.execution import execute_block, genesis_execution
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
        now_ms, transactions = content(height, parent)
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


def executed_chain(builder: ChainBuilder, count: int, *, seed: int,
                   txs_per_block: int = 6) -> list[CommittedItem]:
    """A chain of random real transactions (seeded): see :func:`executed_chain_of`."""
    rng = random.Random(seed)

    def content(height: int, parent: Block) -> tuple[int, list[Transaction]]:
        now_ms = max(GENESIS_TIME_MS + height * rng.randint(800, 4000),
                     parent.timestamp_ms + 1)
        return now_ms, _transactions(rng, height, now_ms, rng.randint(0, txs_per_block),
                                     builder.chain_id)

    return executed_chain_of(builder, count, content)


def replay_into_database(seed: int, blocks: int, *, snapshot_interval: int) -> dict[int, bytes]:
    """Commit the executed test chain into the current database; return its roots."""
    from apps.state.execution import LedgerExecutor, commit_genesis, commit_with_executor
    from apps.state.models import StateVersion
    builder = ChainBuilder()
    items = executed_chain(builder, blocks, seed=seed)
    state = genesis_state(chain_id=builder.chain_id, genesis_time_ms=GENESIS_TIME_MS,
                          validators=builder.validator_set.validators)
    commit_genesis(state=state, block=items[0].block, qc=items[0].qc,
                   snapshot_interval=snapshot_interval)
    executor = LedgerExecutor(state)
    for item in items[1:]:
        commit_with_executor(executor=executor, block=item.block, qc=item.qc,
                             snapshot_interval=snapshot_interval)
    return {version: bytes(root) for version, root in
            StateVersion.objects.order_by("version").values_list("version", "root_hash")}
