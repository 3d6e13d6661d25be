"""A live test chain in the test database: validators with key files, blocks committed one by
one through the real executor and ledger (``commit_with_executor``), taking what the mempool
holds, as a node's worker would."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.mempool.models import MempoolTransaction
from apps.mempool.services import remove_committed
from apps.state.execution import LedgerExecutor, commit_genesis, commit_with_executor
from apps.state.queries import root_at
from cybermesh.keyfiles import KeyKind, generate_signing_key
from cybermesh.protocol.consensus.messages import (
    ZERO_HASH,
    Block,
    QuorumCert,
    block_statement,
    genesis_qc,
)
from cybermesh.protocol.consensus.signatures import Domains
from cybermesh.protocol.crypto.signing import SigningKey
from cybermesh.protocol.executor import ExecutorParameters, genesis_state
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH
from cybermesh.protocol.validator_set import Validator, ValidatorSet

CHAIN_ID = "governance-test"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class LiveChain:
    """Validators ``v0..v{n-1}`` (power 1 each, key files in ``key_dir``), genesis committed,
    ``epoch_length`` blocks per epoch."""

    def __init__(self, key_dir: Path, *, validators: int = 4, epoch_length: int = 4) -> None:
        self.key_paths = [key_dir / f"v{index}.json" for index in range(validators)]
        self.keys: list[SigningKey] = [generate_signing_key(path, kind=KeyKind.NODE)
                                       for path in self.key_paths]
        self.validator_set = ValidatorSet(0, tuple(
            Validator(validator_id=f"v{index}", public_key=key.public_key.raw, power=1,
                      address=f"127.0.0.1:{7100 + index}")
            for index, key in enumerate(self.keys)))
        self.domains = Domains.for_chain(CHAIN_ID)
        genesis_time = now_ms() - 60_000
        state = genesis_state(chain_id=CHAIN_ID, genesis_time_ms=genesis_time,
                              validators=self.validator_set.validators,
                              parameters=ExecutorParameters(epoch_length_blocks=epoch_length))
        genesis = Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="",
                        timestamp_ms=genesis_time, payload=encode_payload([]),
                        tx_root=compute_tx_root(()), state_root=EMPTY_HASH,
                        validator_set_hash=self.validator_set.digest(),
                        qc=genesis_qc(0, ZERO_HASH, 0))
        self.parent_qc = genesis_qc(0, genesis.block_id, 0)
        commit_genesis(state=state, block=genesis, qc=self.parent_qc, snapshot_interval=1000)
        self.parent = genesis
        self.executor = LedgerExecutor(state)

    def _sign_qc(self, block: Block) -> QuorumCert:
        statement = block_statement(block.epoch, block.view, block.block_id, block.height)
        return QuorumCert(epoch=block.epoch, view=block.view, block_id=block.block_id,
                          height=block.height, signatures=tuple(sorted(
                              (f"v{index}", key.sign(self.domains.vote, statement))
                              for index, key in enumerate(self.keys))))

    @property
    def height(self) -> int:
        return self.parent.height

    def commit(self, wires: Sequence[bytes] = ()) -> Block:
        """Commit the next block carrying ``wires`` (and drop them from the mempool)."""
        height = self.parent.height + 1
        payload = encode_payload(list(wires))
        block = Block(epoch=self.executor.state.chain.epoch, view=height, height=height,
                      parent_id=self.parent.block_id, proposer=f"v{height % len(self.keys)}",
                      timestamp_ms=max(now_ms(), self.parent.timestamp_ms + 1),
                      payload=payload, tx_root=compute_tx_root(decode_payload(payload) or ()),
                      state_root=root_at(height - 1),
                      validator_set_hash=self.validator_set.digest(), qc=self.parent_qc)
        qc = self._sign_qc(block)
        commit_with_executor(executor=self.executor, block=block, qc=qc,
                             snapshot_interval=1000)
        self.parent, self.parent_qc = block, qc
        records = decode_payload(payload) or ()
        remove_committed([record.tx_id for record in records])
        return block

    def commit_mempool(self) -> Block:
        """Commit a block with everything the mempool holds."""
        wires = [bytes(wire) for wire in MempoolTransaction.objects.order_by("-priority", "tx_id")
                 .values_list("wire", flat=True)]
        return self.commit(wires)

    def finish_epoch(self) -> None:
        """Commit empty blocks until the current epoch has ended."""
        epoch = self.executor.state.chain.epoch
        while self.executor.state.chain.epoch == epoch:
            self.commit()
