"""The straightforward recursive ``apply`` the fast path replaced (commit 2033108), kept as
an executable reference: ``test_sparse_fast_path.py`` checks that both write identical batches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    NULL_NODE,
    InternalNode,
    LeafNode,
    Node,
    NodeBatch,
    NodeKey,
    NodeReader,
    NullNode,
)
from cybermesh.protocol.merkle.sparse_hashing import (
    EMPTY_HASH,
    KEY_BITS,
    KEY_SIZE,
    internal_hash,
    leaf_hash,
)

_R = MerkleErrorReason
_TOP_BIT = KEY_BITS - 1

# One pending update: (key as integer, key, new value or None to delete).
_Update = tuple[int, bytes, bytes | None]


class _Leaf:
    """A leaf whose final position is not known yet: a parent left with it as its only key
    hands it further up (the shortcut), so it is written only once its place is settled."""

    __slots__ = ("hash", "node", "stored_at")

    def __init__(self, node: LeafNode, stored_at: NodeKey | None) -> None:
        self.node = node
        self.hash = leaf_hash(node.key, node.value_hash)
        self.stored_at = stored_at  # where it already lives unchanged, if anywhere


class _Stored:
    """A subtree whose root node is already stored (or written in this batch)."""

    __slots__ = ("hash", "is_leaf", "version")

    def __init__(self, hash_: bytes, version: int, is_leaf: bool | None) -> None:
        self.hash = hash_
        self.version = version
        # False: an interior node. None: an untouched child whose kind was not loaded. (A
        # stored leaf is always carried as a _Leaf, never as _Stored(is_leaf=True).)
        self.is_leaf = is_leaf


_Subtree = _Leaf | _Stored | None  # None is the empty subtree


class _BatchBuilder:
    """One ``apply``: the sorted updates, the nodes read, and the nodes written."""

    __slots__ = ("cache", "key_ints", "new_nodes", "reader", "stale", "updates", "version")

    def __init__(self, reader: NodeReader, updates: list[_Update], version: int) -> None:
        self.reader = reader
        self.updates = updates
        self.key_ints = [update[0] for update in updates]
        self.version = version
        self.cache: dict[NodeKey, Node] = {}
        self.new_nodes: dict[NodeKey, Node] = {}
        self.stale: set[NodeKey] = set()

    def load(self, node_key: NodeKey) -> Node:
        node = self.cache.get(node_key)
        if node is None:
            node = self.reader.get_node(node_key)
            if node is None:
                raise MerkleError(_R.MISSING_NODE, f"node {node_key} is not in the store")
        return node

    def split(self, depth: int, path: int, lo: int, hi: int) -> int:
        """First index in ``updates[lo:hi]`` whose bit ``depth`` is 1 (all share ``path``)."""
        return bisect_left(self.key_ints, ((path << 1) | 1) << (_TOP_BIT - depth), lo, hi)

    def prefetch(self, root_key: NodeKey) -> None:
        """Read every node on the update paths, one ``get_nodes`` call per tree level."""
        frontier = [(root_key, 0, len(self.updates))]
        while frontier:
            self.cache.update(self.reader.get_nodes([key for key, _, _ in frontier]))
            below = []
            for key, lo, hi in frontier:
                node = self.cache.get(key)
                if not isinstance(node, InternalNode):
                    continue
                mid = self.split(key.depth, key.path, lo, hi)
                if lo < mid and node.left_hash != EMPTY_HASH:
                    below.append((key.child(node.left_version, 0), lo, mid))
                if mid < hi and node.right_hash != EMPTY_HASH:
                    below.append((key.child(node.right_version, 1), mid, hi))
            frontier = below

    def update(self, node_key: NodeKey, node: Node, lo: int, hi: int) -> _Subtree:
        """The subtree at ``node_key`` (holding ``node``) after ``updates[lo:hi]``."""
        if isinstance(node, InternalNode):
            return self._update_internal(node_key, node, lo, hi)
        if isinstance(node, NullNode):
            self.stale.add(node_key)
            return self.build(self.inserts(lo, hi), node_key.depth, node_key.path)
        return self._update_leaf(node_key, node, lo, hi)

    def inserts(self, lo: int, hi: int) -> list[tuple[int, LeafNode]]:
        return [(key_int, LeafNode.of(key, value))
                for key_int, key, value in self.updates[lo:hi] if value is not None]

    def _update_leaf(self, node_key: NodeKey, node: LeafNode, lo: int, hi: int) -> _Subtree:
        leaf_int = int.from_bytes(node.key, "big")
        entries = self.inserts(lo, hi)
        at = bisect_left(self.key_ints, leaf_int, lo, hi)
        if at < hi and self.key_ints[at] == leaf_int:
            new_value = self.updates[at][2]
            if new_value == node.value and len(entries) == 1:
                return _Leaf(node, node_key)  # rewritten with the same value: unchanged
        elif not entries:
            return _Leaf(node, node_key)  # only deletes of absent keys
        else:
            entries.insert(bisect_left(entries, leaf_int, key=lambda e: e[0]),
                           (leaf_int, node))
        self.stale.add(node_key)
        return self.build(entries, node_key.depth, node_key.path)

    def _update_internal(
        self, node_key: NodeKey, node: InternalNode, lo: int, hi: int
    ) -> _Subtree:
        mid = self.split(node_key.depth, node_key.path, lo, hi)
        left = self._child(node_key, node, 0, lo, mid)
        right = self._child(node_key, node, 1, mid, hi)
        if _hash_of(left) == node.left_hash and _hash_of(right) == node.right_hash:
            return _Stored(internal_hash(node.left_hash, node.right_hash), node_key.version,
                           is_leaf=False)
        self.stale.add(node_key)
        return self.join(node_key.depth, node_key.path, left, right)

    def _child(
        self, parent_key: NodeKey, parent: InternalNode, bit: int, lo: int, hi: int
    ) -> _Subtree:
        """Child ``bit`` of ``parent`` after ``updates[lo:hi]`` (all below that child)."""
        if bit:
            hash_, version = parent.right_hash, parent.right_version
        else:
            hash_, version = parent.left_hash, parent.left_version
        depth, path = parent_key.depth + 1, (parent_key.path << 1) | bit
        if hash_ == EMPTY_HASH:
            return self.build(self.inserts(lo, hi), depth, path) if lo < hi else None
        if lo == hi:
            return _Stored(hash_, version, is_leaf=None)
        child_key = NodeKey(version, depth, path)
        return self.update(child_key, self.load(child_key), lo, hi)

    def build(self, entries: list[tuple[int, LeafNode]], depth: int, path: int) -> _Subtree:
        """A fresh subtree holding exactly ``entries`` (sorted by key, all under ``path``)."""
        if len(entries) < 2:
            return _Leaf(entries[0][1], None) if entries else None
        key_ints = [key_int for key_int, _ in entries]
        leaves = [leaf for _, leaf in entries]
        root_hash = self._build_internal(leaves, key_ints, 0, len(entries), depth=depth,
                                         path=path)
        return _Stored(root_hash, self.version, is_leaf=False)

    def _build_internal(
        self, leaves: list[LeafNode], key_ints: list[int], lo: int, hi: int, *, depth: int,
        path: int,
    ) -> bytes:
        """Write the interior node holding ``leaves[lo:hi]`` (two or more) and all below it.

        The bulk-load path: a range of two or more keys is always an interior node and a
        range of one is a leaf right below it, so nothing here ever collapses. Index ranges
        over parallel lists (no slicing) keep it O(n log n) in C-level bisects.
        """
        version, new_nodes = self.version, self.new_nodes
        child_depth, left_path = depth + 1, path << 1
        mid = bisect_left(key_ints, (left_path | 1) << (_TOP_BIT - depth), lo, hi)
        if mid - lo >= 2:
            left_hash = self._build_internal(leaves, key_ints, lo, mid, depth=child_depth,
                                             path=left_path)
        elif mid > lo:
            leaf = leaves[lo]
            left_hash = leaf_hash(leaf.key, leaf.value_hash)
            new_nodes[NodeKey(version, child_depth, left_path)] = leaf
        else:
            left_hash = EMPTY_HASH
        if hi - mid >= 2:
            right_hash = self._build_internal(leaves, key_ints, mid, hi, depth=child_depth,
                                              path=left_path | 1)
        elif hi > mid:
            leaf = leaves[mid]
            right_hash = leaf_hash(leaf.key, leaf.value_hash)
            new_nodes[NodeKey(version, child_depth, left_path | 1)] = leaf
        else:
            right_hash = EMPTY_HASH
        new_nodes[NodeKey(version, depth, path)] = InternalNode(
            left_hash, version if mid > lo else 0, right_hash, version if hi > mid else 0)
        return internal_hash(left_hash, right_hash)

    def join(self, depth: int, path: int, left: _Subtree, right: _Subtree) -> _Subtree:
        """The subtree at ``(depth, path)`` with these children, collapsing a lone leaf up."""
        if left is None or right is None:
            only = right if left is None else left
            if only is None or isinstance(only, _Leaf):
                return only
            if only.is_leaf is None:
                # An untouched sibling whose other side emptied: if it is a leaf it moves up.
                bit = 1 if left is None else 0
                child_key = NodeKey(only.version, depth + 1, (path << 1) | bit)
                stored = self.load(child_key)
                if isinstance(stored, LeafNode):
                    return _Leaf(stored, child_key)
        left_hash, left_version = self.place(left, depth + 1, path << 1)
        right_hash, right_version = self.place(right, depth + 1, (path << 1) | 1)
        node = InternalNode(left_hash, left_version, right_hash, right_version)
        self.new_nodes[NodeKey(self.version, depth, path)] = node
        return _Stored(internal_hash(left_hash, right_hash), self.version, is_leaf=False)

    def place(self, subtree: _Subtree, depth: int, path: int) -> tuple[bytes, int]:
        """Settle ``subtree`` at ``(depth, path)``; return its hash and node version."""
        if subtree is None:
            return EMPTY_HASH, 0
        if isinstance(subtree, _Stored):
            return subtree.hash, subtree.version
        stored_at = subtree.stored_at
        if stored_at is not None:
            if stored_at.depth == depth:
                return subtree.hash, stored_at.version
            self.stale.add(stored_at)
        self.new_nodes[NodeKey(self.version, depth, path)] = subtree.node
        return subtree.hash, self.version


def _hash_of(subtree: _Subtree) -> bytes:
    return EMPTY_HASH if subtree is None else subtree.hash


def _sorted_updates(updates: Mapping[bytes, bytes | None]) -> list[_Update]:
    checked: list[_Update] = []
    for key, value in updates.items():
        if not isinstance(key, bytes) or len(key) != KEY_SIZE:
            raise MerkleError(_R.INVALID_KEY, "keys must be 32-byte hashes")
        if value is not None and not isinstance(value, bytes):
            raise MerkleError(_R.INVALID_VALUE, "values must be bytes, or None to delete")
        checked.append((int.from_bytes(key, "big"), key, value))
    checked.sort(key=lambda update: update[0])
    return checked


def reference_apply(
    reader: NodeReader, base_version: int | None, updates: Mapping[bytes, bytes | None],
    new_version: int,
) -> tuple[bytes, NodeBatch]:
    """``SparseMerkleTree.apply`` as it was (version checks left to the real one)."""
    builder = _BatchBuilder(reader, _sorted_updates(updates), new_version)
    root_key = NodeKey(new_version, 0, 0)
    if base_version is None:
        result = builder.build(builder.inserts(0, len(builder.updates)), 0, 0)
    else:
        base_key = NodeKey(base_version, 0, 0)
        builder.prefetch(base_key)
        base_root = builder.cache.get(base_key)
        if base_root is None:
            base_root = builder.load(base_key)
        result = builder.update(base_key, base_root, 0, len(builder.updates))
        builder.stale.add(base_key)
    root = _root_node(builder, result)
    builder.new_nodes[root_key] = root
    batch = NodeBatch(new_version, root.hash, tuple(builder.new_nodes.items()),
                      tuple(sorted(builder.stale)))
    return batch.root_hash, batch


def _root_node(builder: _BatchBuilder, result: _Subtree) -> Node:
    """The node every version keeps at its root position (copied if unchanged)."""
    if result is None:
        return NULL_NODE
    if isinstance(result, _Leaf):
        if result.stored_at is not None:
            builder.stale.add(result.stored_at)
        return result.node
    root_key = NodeKey(result.version, 0, 0)
    written = builder.new_nodes.get(root_key)
    return written if written is not None else builder.load(root_key)
