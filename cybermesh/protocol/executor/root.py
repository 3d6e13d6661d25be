"""State roots: the executor's state updates fed to the sparse Merkle tree.

The executor never hashes state itself; it hands ``{key: bytes | None}`` updates to
:class:`~cybermesh.protocol.merkle.sparse.SparseMerkleTree`, whose root commits to exactly the
``key -> bytes`` content of the state. :func:`state_root` computes a root from scratch (tests,
verification); :class:`StateRootTracker` keeps an in-memory node store and applies each block's
updates as a new version (the benchmark, simulations; ``apps.state`` does the same against its
database-backed node store).
"""

from __future__ import annotations

from collections.abc import Mapping

from cybermesh.protocol.executor.state import State
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore, NodeBatch
from cybermesh.protocol.merkle.sparse import SparseMerkleTree

__all__ = ["StateRootTracker", "state_root"]


def state_root(entries: Mapping[bytes, bytes] | State) -> bytes:
    """The root of a whole state (or of its ``key -> bytes`` content), built from scratch."""
    content = entries.entries() if isinstance(entries, State) else entries
    root, _ = SparseMerkleTree(InMemoryNodeStore()).apply(None, dict(content), 0)
    return root


class StateRootTracker:
    """Versioned roots over an in-memory node store: version = block height."""

    __slots__ = ("_store", "_tree", "version")

    def __init__(self, genesis: State) -> None:
        self._store = InMemoryNodeStore()
        self._tree = SparseMerkleTree(self._store)
        _, batch = self._tree.apply(None, genesis.entries(), genesis.height)
        self._store.write_batch(batch)
        self.version = genesis.height

    def apply(self, updates: Mapping[bytes, bytes | None], height: int) -> tuple[bytes,
                                                                                  NodeBatch]:
        """Apply one block's updates as version ``height``; return its root and batch."""
        root, batch = self._tree.apply(self.version, updates, height)
        self._store.write_batch(batch)
        self.version = height
        return root, batch

    def root(self) -> bytes:
        return self._tree.root_hash(self.version)

    def prune(self, min_retained_version: int) -> int:
        return self._store.prune(min_retained_version)
