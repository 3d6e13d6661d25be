"""Ledger catch-up: committed blocks from a peer, accepted only with a proof they committed.

A node further behind than the consensus core's block window asks a peer for committed
blocks: ``[LEDGER_SYNC_REQUEST] CBOR [first_height, count]``. The answer is a consensus
``SyncResponse`` (blocks in height order and a QC on the last one) behind the
``LEDGER_SYNC_RESPONSE`` tag.

**Why a QC per block is not enough.** In 2-chain HotStuff a certified block can still be
abandoned: if too few replicas saw its QC, a timeout certificate lets the next leader extend an
older QC. A Byzantine peer holding such a block could serve it as "committed". The requester
therefore applies the commit rule itself: the final QC authenticates the last block, hash
links (each block's ``parent_id`` and its ``qc.block_id``) authenticate every block below, and
block ``B`` is committed once some certified child ``C`` of it has ``C.view == B.view + 1``;
then ``B`` and all its ancestors are committed. Only those are written to the ledger.

**What the server sends.** Its committed blocks from ``first`` (the ledger rows) and, when the
batch reaches its committed tip, the certified but uncommitted chain above the tip with its
highest QC: that is the 2-chain proof of its own tip. A batch stops early (soft byte budget)
only after a consecutive-view pair, so the requester can always commit something from it;
it never exceeds the peer link's frame cap.

**Epochs.** A block carrying ``next_validators`` ends its epoch; the server stops there and
appends the epoch-ending proof the core kept for it (in memory), if any. Blocks of the next
epoch are fetched with the next request, after the requester rebuilt its core on the new set.
Without the proof the requester commits up to just below the reconfiguration block and the
core's own epoch sync takes it from there.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cybermesh.protocol.codec import CodecError, DecodeLimits, decode, encode
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.events import CommitBlocks, CommittedBlock
from cybermesh.protocol.consensus.messages import Block, QuorumCert, SyncResponse
from cybermesh.protocol.consensus.wire import WireLimits, decode_message, encode_message

# Ledger sync frames share the block-sync topic with consensus sync, under their own tags
# (consensus message tags are small integers; these never collide with one).
LEDGER_SYNC_REQUEST = 0xF0
LEDGER_SYNC_RESPONSE = 0xF1
MAX_BATCH = 48  # committed blocks per response; leaves room for the proof chain (64 max)
# Headroom for the QC, the tag and CBOR framing besides the blocks' own bytes.
FRAME_OVERHEAD = 64 * 1024
BLOCK_OVERHEAD = 4 * 1024


class LedgerSyncRefusal(enum.StrEnum):
    MALFORMED = "malformed"
    NOT_LINKED = "not_linked"  # does not extend our tip, or broken hash links
    BAD_QC = "bad_qc"
    WRONG_EPOCH = "wrong_epoch"


class LedgerSyncError(Exception):
    def __init__(self, reason: LedgerSyncRefusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


def encode_request(first: int, count: int) -> bytes:
    return bytes((LEDGER_SYNC_REQUEST,)) + encode([first, count])


def parse_request(payload: bytes) -> tuple[int, int] | None:
    """(first height, count) of a request, or None if it is not a well-formed one."""
    try:
        request = decode(payload[1:], DecodeLimits(max_bytes=64, max_depth=2, max_items=4))
    except CodecError:
        return None
    if not (isinstance(request, list) and len(request) == 2
            and all(type(value) is int and value >= 0 for value in request)):
        return None
    first, count = request
    assert isinstance(first, int) and isinstance(count, int)  # noqa: S101 -- checked above
    return first, min(count, MAX_BATCH)


def block_size(block: Block) -> int:
    return len(block.payload) + BLOCK_OVERHEAD


def consecutive(parent: Block, child: Block) -> bool:
    return child.parent_id == parent.block_id and child.view == parent.view + 1


def encode_response(response: SyncResponse) -> bytes:
    return bytes((LEDGER_SYNC_RESPONSE,)) + encode_message(response)


def choose_committed(load: Callable[[int], tuple[Block, QuorumCert] | None], first: int,
                     last: int, budget: int) -> tuple[list[Block], QuorumCert | None]:
    """Committed blocks ``first..last`` (inclusive) within ``budget`` bytes, stopping early
    only after a consecutive-view pair or at an epoch's last block; and the QC on the last."""
    blocks: list[Block] = []
    qc: QuorumCert | None = None
    size = 0
    for height in range(first, last + 1):
        loaded = load(height)
        if loaded is None:
            break
        block, block_qc = loaded
        if blocks and size + block_size(block) > budget:
            break  # the hard cap: the frame must fit
        blocks.append(block)
        qc = block_qc
        size += block_size(block)
        if block.next_validators is not None:
            break  # the epoch ends here
        if size > budget // 2 and len(blocks) >= 2 and consecutive(blocks[-2], blocks[-1]):
            break
    return blocks, qc


def parse_response(payload: bytes, limits: WireLimits) -> SyncResponse:
    try:
        message = decode_message(payload[1:], limits)
    except MessageError as error:
        raise LedgerSyncError(LedgerSyncRefusal.MALFORMED, str(error)) from None
    if not isinstance(message, SyncResponse) or message.qc is None or not message.blocks:
        raise LedgerSyncError(LedgerSyncRefusal.MALFORMED, "not a certified block chain")
    return message


def provably_committed(tip: Block, response: SyncResponse, *, epoch: int,
                       verify_qc: Callable[[QuorumCert], None]) -> list[tuple[Block, QuorumCert]]:
    """The blocks of ``response`` that extend ``tip`` and are committed by the 2-chain rule,
    each with the QC that certifies it; raise :class:`LedgerSyncError` if the response is not
    an authentic chain extending ``tip``. ``verify_qc`` raises on an invalid QC."""
    blocks: Sequence[Block] = [block for block in response.blocks if block.height > tip.height]
    if not blocks:
        return []
    final_qc = response.qc
    assert final_qc is not None  # noqa: S101 -- parse_response checked it
    if blocks[0].parent_id != tip.block_id or blocks[0].height != tip.height + 1:
        raise LedgerSyncError(LedgerSyncRefusal.NOT_LINKED, "does not extend our tip")
    for lower, upper in itertools.pairwise(blocks):
        if not (upper.parent_id == lower.block_id and upper.qc.block_id == lower.block_id
                and upper.height == lower.height + 1):
            raise LedgerSyncError(LedgerSyncRefusal.NOT_LINKED, f"broken link at {upper.height}")
    top = blocks[-1]
    if final_qc.block_id != top.block_id:
        raise LedgerSyncError(LedgerSyncRefusal.NOT_LINKED, "final QC is not on the last block")
    # One epoch per response: a later epoch's QC does not verify against our validator set,
    # and the server stops at the block that ends the epoch.
    if final_qc.epoch != epoch or any(block.epoch != epoch for block in blocks):
        raise LedgerSyncError(LedgerSyncRefusal.WRONG_EPOCH, "blocks or QC of another epoch")
    try:
        verify_qc(final_qc)
    except ValueError as error:
        raise LedgerSyncError(LedgerSyncRefusal.BAD_QC, str(error)) from None
    # certifying[i] is the QC on blocks[i]: the next block's header QC, or the final QC.
    certifying = [block.qc for block in blocks[1:]] + [final_qc]
    committed_through = -1
    for index in range(len(blocks) - 1):
        if blocks[index + 1].view == blocks[index].view + 1:
            committed_through = index  # blocks[index + 1] is certified (certifying[index + 1])
    chosen = []
    for index in range(committed_through + 1):
        chosen.append((blocks[index], certifying[index]))
        if blocks[index].next_validators is not None:
            break  # the epoch ends: the rebuilt core continues in the next one
    return chosen


class Committer(Protocol):
    def commit(self, action: CommitBlocks) -> Any: ...


def commit_chosen(app: Committer, chosen: Sequence[tuple[Block, QuorumCert]]) -> None:
    """Commit, one by one and in order, the blocks :func:`provably_committed` chose."""
    for block, qc in chosen:
        app.commit(CommitBlocks(blocks=(CommittedBlock(block, qc),), proof_block=block,
                                proof_qc=qc))
