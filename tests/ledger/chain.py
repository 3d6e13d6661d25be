"""A signed test chain: real Ed25519 validators, QCs, payloads and state roots.

The builder executes each block with a small deterministic rule set (:func:`updates_for`) on
an *in-memory* sparse Merkle tree to fill the next header's ``state_root``, so a database that
commits these blocks must reproduce the in-memory roots exactly, or the commit is refused.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
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
