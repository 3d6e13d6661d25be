"""Where a node starts from: the genesis block, the committed tip, the current epoch.

On a fresh database the worker commits the epoch-0 root block built from the genesis file
(deterministically, so every validator derives the same block id) together with the genesis
state. On a restart it rebuilds the committed tip, its commit certificate, the executor state
and the epoch it belongs to from the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.ledger.models import Block as BlockRow
from apps.ledger.rows import load_block
from apps.state.execution import LedgerExecutor, commit_genesis
from apps.state.models import StateVersion
from cybermesh.protocol.consensus.messages import ZERO_HASH, Block, QuorumCert, genesis_qc
from cybermesh.protocol.consensus.quorum import EpochState
from cybermesh.protocol.executor import active_validator_set, genesis_state
from cybermesh.protocol.genesis import Genesis
from cybermesh.protocol.merkle.transparency import tree_hash


class BootstrapError(RuntimeError):
    """The database does not belong to this genesis, or is damaged."""


@dataclass(frozen=True, slots=True)
class Tip:
    block: Block
    qc: QuorumCert
    state_root: bytes  # after executing ``block``
    executor: LedgerExecutor
    epoch: EpochState


def genesis_block(genesis: Genesis) -> Block:
    """The epoch-0 root block every validator derives from the genesis file alone."""
    return Block(epoch=0, view=0, height=0, parent_id=ZERO_HASH, proposer="",
                 timestamp_ms=genesis.genesis_time_ms, payload=b"", tx_root=tree_hash([]),
                 state_root=ZERO_HASH, validator_set_hash=genesis.validator_set.digest(),
                 qc=QuorumCert(epoch=0, view=0, block_id=ZERO_HASH, height=0, signatures=()))


def epoch_root(epoch: int) -> tuple[Block, QuorumCert]:
    """The committed block an epoch grows from: genesis, or the reconfiguration block."""
    if epoch == 0:
        loaded = load_block(0)
    else:
        row = (BlockRow.objects.filter(epoch=epoch - 1, next_validators__isnull=False)
               .order_by("-height").values_list("height", flat=True).first())
        if row is None:
            raise BootstrapError(f"the ledger has no reconfiguration block for epoch {epoch}")
        loaded = load_block(row)
    if loaded is None:
        raise BootstrapError(f"the root block of epoch {epoch} is missing from the ledger")
    return loaded


def load_or_create_tip(genesis: Genesis, *, node_id: str) -> Tip:
    """Commit genesis on an empty ledger; return the committed tip either way."""
    expected_root = genesis_block(genesis)
    if not BlockRow.objects.exists():
        state = genesis_state(chain_id=genesis.chain_id, genesis_time_ms=genesis.genesis_time_ms,
                              validators=genesis.validator_set.validators,
                              parameters=genesis.executor)
        commit_genesis(state=state, block=expected_root,
                       qc=genesis_qc(0, expected_root.block_id, 0), node_id=node_id)
    stored_genesis = load_block(0)
    if stored_genesis is None or stored_genesis[0].block_id != expected_root.block_id:
        raise BootstrapError("the database holds another chain's genesis block; refusing to "
                             "run (wrong DATABASE_URL or CLUSTER_TOPOLOGY?)")
    top = BlockRow.objects.order_by("-height").values_list("height", flat=True).first()
    assert top is not None  # noqa: S101 -- genesis was committed just above
    loaded = load_block(top)
    if loaded is None:
        raise BootstrapError(f"committed block {top} cannot be rebuilt from the ledger")
    block, qc = loaded
    root = (StateVersion.objects.filter(version=top).values_list("root_hash", flat=True)
            .first())
    if root is None:
        raise BootstrapError(f"the state after block {top} is missing")
    executor = LedgerExecutor.load()
    validator_set = active_validator_set(executor.state)
    if block.next_validators is not None:
        # The tip ends an epoch: the next epoch grows from it.
        root_block, root_height = block, block.height
    else:
        root_block, _ = epoch_root(validator_set.epoch)
        root_height = root_block.height
    epoch = EpochState(validator_set.epoch, validator_set, root_block.block_id, root_height)
    return Tip(block=block, qc=qc, state_root=bytes(root), executor=executor, epoch=epoch)
