"""Block sync and epoch changes: fetching missing blocks, and moving to the next epoch.

A node that holds a verified QC for a block it does not have (it missed the proposal, or it
restarted) asks a peer for the chain ending at that block. Responses are self-authenticating:
blocks are stored by their hash and only ever used when reached from a verified QC or by hash
links, so a Byzantine responder can waste a request but cannot make a node accept anything.

Only answers to this node's own requests are absorbed, and each request at most once: the node
remembers (bounded, oldest forgotten first) which peer it asked for which block, and a response
must come from that peer, be hash-linked, and end at the requested block (an epoch-end proof,
asked for with the zero id, ends wherever the epoch ended). Unsolicited, repeated or unlinked
responses are dropped, so no peer can fill the uncommitted block store with blocks nobody asked
for: every stored block is hash-linked to a block id this node asked for. The one exception is
the node's own id as sender: the runtime feeds the chain it recorded before a restart back in.

A committed reconfiguration block ends its epoch: the node stores an epoch-ending proof (the
committed blocks of the epoch it still holds, the chain up to the 2-chain proof block, and the
QC on that block), resets SafetyRules, and starts the next epoch with the reconfiguration block
as its root. A node that hears from a later epoch asks for that proof and commits its way in.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from cybermesh.protocol.consensus.events import EnterEpoch, PersistSafetyData
from cybermesh.protocol.consensus.messages import (
    ZERO_HASH,
    Block,
    QuorumCert,
    SyncRequest,
    SyncResponse,
)
from cybermesh.protocol.consensus.quorum import EpochState
from cybermesh.protocol.validator_set import ValidatorSet, ValidatorSetError

if TYPE_CHECKING:
    from cybermesh.protocol.consensus.core import ConsensusCore

KEPT_EPOCH_PROOFS = 4
MAX_OUTSTANDING_REQUESTS = 64
EPOCH_PROOF = ZERO_HASH  # the block id asked for when what is wanted is an epoch-end proof


class OutstandingRequests:
    """The sync requests this node sent and has not had answered: (peer, block id), bounded."""

    def __init__(self, limit: int = MAX_OUTSTANDING_REQUESTS) -> None:
        self._limit = limit
        self._pending: OrderedDict[tuple[str, bytes], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, peer: str, block_id: bytes) -> None:
        key = (peer, block_id)
        self._pending.pop(key, None)
        self._pending[key] = None
        while len(self._pending) > self._limit:
            self._pending.popitem(last=False)

    def claim(self, peer: str, response: SyncResponse) -> bytes | None:
        """The requested id ``response`` answers (forgetting the request), or None."""
        top = response.blocks[-1].block_id if response.blocks else None
        for block_id in (top, EPOCH_PROOF):
            if block_id is not None and (peer, block_id) in self._pending:
                del self._pending[(peer, block_id)]
                return block_id
        return None


def _linked(blocks: tuple[Block, ...]) -> bool:
    return all(blocks[index].block_id == blocks[index + 1].parent_id
               for index in range(len(blocks) - 1))


def answer(core: ConsensusCore, request: SyncRequest) -> SyncResponse | None:
    """The response to a sync request, or None when this node cannot help."""
    limit = core.config.max_sync_blocks
    if request.epoch < core.epoch.epoch:
        proof = core.epoch_end_proofs.get(request.epoch)
        if proof is None or not proof.blocks:
            return None
        by_id = {block.block_id: block for block in proof.blocks}
        top = request.block_id if request.block_id in by_id else proof.blocks[-1].block_id
        chain: list[Block] = []
        while len(chain) < limit:
            block = by_id.get(top)
            if block is None or block.height <= request.committed_height:
                break
            chain.append(block)
            top = block.parent_id
        chain.reverse()
        complete = bool(chain) and chain[-1].block_id == proof.blocks[-1].block_id
        return SyncResponse(request.epoch, tuple(chain), proof.qc if complete else None)
    if request.epoch == core.epoch.epoch:
        chain = core.tree.serve(request.block_id, request.committed_height, limit)
        if not chain:
            return None
        qc = core.highest_qc if core.highest_qc.block_id == chain[-1].block_id else None
        return SyncResponse(request.epoch, tuple(chain), qc)
    return None


def absorb(core: ConsensusCore, sender: str, response: SyncResponse) -> None:
    """Store the blocks of a sync response and retry the commit that was waiting for them."""
    if response.epoch != core.epoch.epoch:
        return
    # The node's own id is the runtime handing back its recovery record after a restart (its
    # own storage, never a peer: peer ids are authenticated by the transport).
    solicited = sender == core.validator_id \
        or core.sync_outstanding.claim(sender, response) is not None
    if not solicited or not _linked(response.blocks):
        core.stats.dropped += 1  # unsolicited, answered already, or not one chain
        return
    for block in response.blocks:
        if block.epoch == core.epoch.epoch:
            core.tree.insert(block)
    if response.qc is not None:
        try:
            core.certificates.verify_qc(response.qc, core.epoch)
        except ValueError:
            core.stats.dropped += 1
        else:
            core.process_qc(response.qc, sender)
    pending = core._pending_commit
    if pending is not None and pending.epoch == core.epoch.epoch:
        core.try_commit(pending, sender)


def valid_next_set(core: ConsensusCore, block: Block) -> bool:
    """A proposed validator-set change must form a usable set."""
    if block.next_validators is None:
        return True
    try:
        ValidatorSet(epoch=block.epoch + 1, validators=block.next_validators)
    except ValidatorSetError:
        return False
    return True


def enter_next_epoch(core: ConsensusCore, reconfiguration: Block, proof_block: Block,
                     proof_qc: QuorumCert) -> None:
    """The committed ``reconfiguration`` block ends the epoch: switch to the next one."""
    old_epoch = core.epoch.epoch
    committed = core.tree.committed_since(-1, old_epoch)
    above = core.tree.serve(proof_block.block_id, reconfiguration.height,
                            proof_block.height - reconfiguration.height)
    core.epoch_end_proofs[old_epoch] = SyncResponse(old_epoch, tuple(committed + above),
                                                    proof_qc)
    for stale in sorted(core.epoch_end_proofs)[:-KEPT_EPOCH_PROOFS]:
        del core.epoch_end_proofs[stale]
    assert reconfiguration.next_validators is not None  # noqa: S101 -- checked by the caller
    new_set = ValidatorSet(epoch=old_epoch + 1, validators=reconfiguration.next_validators)
    data = core.safety.start_epoch(old_epoch + 1)
    core._actions.append(PersistSafetyData(data))
    core._install_epoch(EpochState(old_epoch + 1, new_set, reconfiguration.block_id,
                                   reconfiguration.height), reconfiguration, None)
    core._actions.append(EnterEpoch(new_set, core.member))
    core._advance(1, progress=True)
