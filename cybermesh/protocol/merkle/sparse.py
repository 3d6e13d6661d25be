"""The authenticated state map: a versioned 256-level sparse Merkle tree.

Keys are 32-byte hashes (callers hash their logical key, e.g. ``sha256(namespace || key)``),
values are bytes. Conceptually every one of the 2**256 key positions is a leaf of a binary
tree; in practice a subtree holding no key is the constant ``EMPTY_HASH`` and a subtree
holding exactly one key is that key's leaf, placed at the highest position where it is alone
(Diem's / Aptos' Jellyfish Merkle tree shortcut). With ``n`` random keys a path is about
``log2(n)`` nodes deep, so reads, proofs and updates cost ``O(log n)`` hashes. The shape is
canonical: the root depends only on the key/value set, never on the order of updates.

Storage is versioned (see :mod:`~cybermesh.protocol.merkle.nodestore`): ``apply`` builds one
new version from a base version and returns the root and the :class:`NodeBatch` to persist;
it never writes. Any version whose nodes are retained can be read and proved.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter

from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    MAX_VERSION,
    InternalNode,
    Node,
    NodeBatch,
    NodeKey,
    NodeReader,
    NullNode,
)
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH, KEY_BITS, KEY_SIZE
from cybermesh.protocol.merkle.sparse_proof import Proof, ProofLeaf, verify_proof
from cybermesh.protocol.merkle.sparse_update import BatchBuilder

__all__ = ["Proof", "ProofLeaf", "SparseMerkleTree", "verify_proof"]

_R = MerkleErrorReason
_TOP_BIT = KEY_BITS - 1

# One pending update: (key as integer, key, new value or None to delete).
_Update = tuple[int, bytes, bytes | None]


def _sorted_updates(updates: Mapping[bytes, bytes | None]) -> list[_Update]:
    checked: list[_Update] = []
    for key, value in updates.items():
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise MerkleError(_R.INVALID_KEY, "keys must be 32-byte hashes")
        if value is not None and not isinstance(value, bytes):
            raise MerkleError(_R.INVALID_VALUE, "values must be bytes, or None to delete")
        checked.append((int.from_bytes(key, "big"), key, value))
    checked.sort(key=itemgetter(0))  # by key integer (keys are unique)
    return checked


def _check_version(version: int) -> None:
    if type(version) is not int or not 0 <= version <= MAX_VERSION:
        raise MerkleError(_R.INVALID_VERSION, f"version {version!r} is not a u64")


class SparseMerkleTree:
    """Reads, proves and updates the state tree stored behind ``reader``."""

    __slots__ = ("_reader",)

    def __init__(self, reader: NodeReader) -> None:
        self._reader = reader

    def _node(self, node_key: NodeKey) -> Node:
        node = self._reader.get_node(node_key)
        if node is None:
            if node_key.depth == 0:
                raise MerkleError(_R.VERSION_NOT_FOUND,
                                  f"version {node_key.version} is unknown or pruned")
            raise MerkleError(_R.MISSING_NODE, f"node {node_key} is not in the store")
        return node

    def root_hash(self, version: int) -> bytes:
        """The state root of ``version``."""
        return self._node(NodeKey(version, 0, 0)).hash

    def get(self, version: int, key: bytes) -> bytes | None:
        """The value of ``key`` at ``version``, or ``None`` if absent."""
        return self.get_with_proof(version, key)[0]

    def prove(self, version: int, key: bytes) -> Proof:
        """An inclusion proof if ``key`` is present at ``version``, else a non-inclusion one."""
        return self.get_with_proof(version, key)[1]

    def get_with_proof(self, version: int, key: bytes) -> tuple[bytes | None, Proof]:
        """The value of ``key`` at ``version`` and the proof of it, in one walk."""
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise MerkleError(_R.INVALID_KEY, "keys must be 32-byte hashes")
        key_bits = int.from_bytes(key, "big")
        siblings: list[bytes] = []
        node_key = NodeKey(version, 0, 0)
        node = self._node(node_key)
        while isinstance(node, InternalNode):
            depth = node_key.depth
            if (key_bits >> (_TOP_BIT - depth)) & 1:
                siblings.append(node.left_hash)
                child_hash, child_version = node.right_hash, node.right_version
            else:
                siblings.append(node.right_hash)
                child_hash, child_version = node.left_hash, node.left_version
            if child_hash == EMPTY_HASH:
                return None, Proof(tuple(siblings), None)
            node_key = NodeKey(child_version, depth + 1, key_bits >> (_TOP_BIT - depth))
            node = self._node(node_key)
        if isinstance(node, NullNode):
            return None, Proof((), None)
        proof = Proof(tuple(siblings), ProofLeaf(node.key, node.value_hash))
        return (node.value if node.key == key else None), proof

    def apply(
        self, base_version: int | None, updates: Mapping[bytes, bytes | None], new_version: int
    ) -> tuple[bytes, NodeBatch]:
        """Build ``new_version`` from ``base_version`` (``None``: the empty tree) by setting
        each key of ``updates`` to its value, or deleting it where the value is ``None``.

        Returns the new root and the batch to persist: the new nodes, and the keys of the
        nodes this version made stale. Deleting an absent key is a no-op. ``new_version`` must
        be greater than ``base_version``; it always gets its own root node, even when nothing
        changed, so every version can be read.
        """
        _check_version(new_version)
        if base_version is not None:
            _check_version(base_version)
            if new_version <= base_version:
                raise MerkleError(_R.INVALID_VERSION,
                                  f"new version {new_version} is not after {base_version}")
        builder = BatchBuilder(self._reader, _sorted_updates(updates), new_version)
        root = builder.genesis() if base_version is None else builder.update(base_version)
        builder.new_nodes[NodeKey(new_version, 0, 0)] = root
        batch = NodeBatch(new_version, root.hash, tuple(builder.new_nodes.items()),
                          tuple(sorted(builder.stale)))
        return batch.root_hash, batch
