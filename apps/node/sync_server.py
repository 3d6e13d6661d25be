"""The serving side of ledger catch-up: committed blocks and the proof that they committed.

Runs on the consensus thread of a validator (it reads the core's tree and highest QC). See
apps/node/ledger_sync.py for the request and response format and for what the requester
checks; this module chooses what to send:

* the committed blocks from the requested height (ledger rows), within the frame budget;
* when the batch ends at the block that ends an epoch, the epoch-end proof above it (from the
  core's memory, or the one kept in the database: apps/node/epoch_proofs.py), so the
  requester can commit the reconfiguration block even after we restarted or left the set;
* when the batch ends at our tip, the certified chain above the tip with our highest QC (the
  tip's own 2-chain proof);
* asked for the block after our tip, the tip and that chain: a follower at our height learns
  it is level. Past a tip that ends an epoch there is nothing of ours to prove.
"""

from __future__ import annotations

from apps.ledger.rows import load_block
from apps.node import ledger_sync
from apps.node.epoch_proofs import load_epoch_proof
from cybermesh.protocol.consensus.core import ConsensusCore
from cybermesh.protocol.consensus.messages import SyncResponse


def serve_committed(core: ConsensusCore, payload: bytes, *, max_message_size: int
                    ) -> bytes | None:
    """The encoded response to a ledger-sync request, or None when we cannot help."""
    request = ledger_sync.parse_request(payload)
    if request is None:
        return None
    first, count = request
    tip = core.committed
    if count == 0 or first > tip.height + 1:
        return None
    if first == tip.height + 1:
        if tip.next_validators is not None:
            return None  # the next epoch's blocks are not ours to prove
        first = tip.height
    budget = max_message_size - ledger_sync.FRAME_OVERHEAD
    blocks, qc = ledger_sync.choose_committed(load_block, first,
                                              min(first + count - 1, tip.height), budget)
    if not blocks or qc is None:
        return None
    last = blocks[-1]
    if last.next_validators is not None:
        proof = core.epoch_end_proofs.get(last.epoch) or load_epoch_proof(last.epoch)
        above = [] if proof is None or proof.qc is None else \
            [block for block in proof.blocks if block.height > last.height]
        if above and above[0].parent_id == last.block_id and proof is not None \
                and proof.qc is not None and proof.qc.block_id == above[-1].block_id:
            blocks, qc = blocks + above, proof.qc
    elif last.block_id == tip.block_id:
        highest = core.highest_qc
        size = sum(ledger_sync.block_size(block) for block in blocks)
        above = core.tree.serve(highest.block_id, tip.height,
                                core.config.max_sync_blocks - len(blocks))
        if above and above[0].parent_id == tip.block_id \
                and above[-1].block_id == highest.block_id \
                and size + sum(map(ledger_sync.block_size, above)) <= budget:
            blocks, qc = blocks + above, highest
    return ledger_sync.encode_response(SyncResponse(blocks[0].epoch, tuple(blocks), qc))
