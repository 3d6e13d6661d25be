"""The blocks a node holds: the committed tip, uncommitted blocks above it, a window below it.

Blocks are stored by id, and an id is the hash of the whole block, so storing a block received
from anyone is harmless: it is only ever used when reached from a verified QC (by its id) or by
hash links from such a block. Memory stays flat: every commit drops blocks at or below the new
tip (except a bounded window of recently committed blocks kept to serve lagging peers) and
uncommitted blocks of views that can no longer commit.
"""

from __future__ import annotations

from collections import OrderedDict

from cybermesh.protocol.consensus.messages import Block

MAX_UNCOMMITTED_BLOCKS = 4096


class BlockTree:
    def __init__(self, root: Block, *, committed_window: int = 256) -> None:
        self.committed = root
        self._blocks: dict[bytes, Block] = {root.block_id: root}
        self._window: OrderedDict[bytes, Block] = OrderedDict()
        self._window_size = committed_window

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, block_id: bytes) -> Block | None:
        block = self._blocks.get(block_id)
        if block is None:
            block = self._window.get(block_id)
        return block

    def is_committed(self, block_id: bytes) -> bool:
        return block_id == self.committed.block_id or block_id in self._window

    def knows_committed_height(self, height: int) -> bool:
        """Whether the committed block at ``height`` is still held (tip or window)."""
        lowest = next(iter(self._window.values())).height if self._window \
            else self.committed.height
        return lowest <= height <= self.committed.height

    def insert(self, block: Block) -> bool:
        """Keep ``block`` if it is above the committed tip (and the store is not full)."""
        if block.height <= self.committed.height or block.block_id in self._blocks:
            return False
        if len(self._blocks) >= MAX_UNCOMMITTED_BLOCKS:
            return False
        self._blocks[block.block_id] = block
        return True

    def chain_above_committed(self, block_id: bytes) -> tuple[list[Block], bytes | None]:
        """Blocks from just above the committed tip up to ``block_id``, ascending.

        Returns (chain, missing id): when a block on the way down is unknown, its id is
        returned so the caller can fetch it. A chain whose lowest block does not have the
        committed tip as parent conflicts with the committed prefix; the caller checks that.
        """
        chain: list[Block] = []
        current = block_id
        floor = self.committed.height
        while True:
            block = self._blocks.get(current)
            if block is None:
                return [], current
            if block.height <= floor:
                break
            chain.append(block)
            current = block.parent_id
        chain.reverse()
        return chain, None

    def mark_committed(self, blocks: list[Block]) -> None:
        """Advance the tip to ``blocks[-1]`` and prune what can no longer matter."""
        for block in blocks:
            self._window[block.block_id] = block
        while len(self._window) > self._window_size:
            self._window.popitem(last=False)
        tip = blocks[-1]
        self.committed = tip
        self._blocks = {
            block_id: block for block_id, block in self._blocks.items()
            if block_id == tip.block_id
            or (block.height > tip.height and (block.epoch != tip.epoch or block.view > tip.view))
        }

    def serve(self, block_id: bytes, above_height: int, limit: int) -> list[Block]:
        """Up to ``limit`` blocks ending at ``block_id`` and above ``above_height``, ascending."""
        chain: list[Block] = []
        current = block_id
        while len(chain) < limit:
            block = self.get(current)
            if block is None or block.height <= above_height:
                break
            chain.append(block)
            current = block.parent_id
        chain.reverse()
        return chain

    def committed_since(self, above_height: int, epoch: int) -> list[Block]:
        """Recently committed blocks of ``epoch`` above ``above_height`` (ascending)."""
        return [b for b in self._window.values() if b.height > above_height and b.epoch == epoch]
