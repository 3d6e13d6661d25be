"""One ``SparseMerkleTree.apply``: the nodes it reads, rewrites, writes and makes stale.

The walk is level-synchronous. Going down, it reads the nodes on the update paths one tree
level at a time (one ``get_nodes`` call per level, so a database store answers a block in about
``log2 n`` queries) and, for each interior node, splits the sorted updates between its two
children once. Leaves, empty children and untouched children are settled on the way down.
Coming back up, it visits the interior nodes in reverse order (every child before its parent)
and rebuilds each whose children changed. Nothing is read or split twice.

This runs once per node of every block, so it is written for CPython: results live in flat
lists indexed by *slot* (slot 0 is the root; interior node ``i`` has its children in slots
``2i + 1`` and ``2i + 2``) rather than in a container per node. Besides speed, that matters to
the cyclic garbage collector: per-node containers that live for the whole walk are promoted to
its oldest generation and make it rescan the whole heap (every stored node) more often. Node
keys and nodes are NamedTuples built with ``tuple.__new__`` (in C).

The result is defined by the tree's rules alone (see :mod:`~cybermesh.protocol.merkle.sparse`)
and checked by ``tests/protocol/merkle``: against pinned known answers, and batch for batch
against the recursive formulation this replaced (same nodes under the same keys, same stale
keys, same roots).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import cast

from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    NULL_NODE,
    InternalNode,
    LeafNode,
    Node,
    NodeKey,
    NodeReader,
)
from cybermesh.protocol.merkle.sparse_hashing import (
    EMPTY_HASH,
    KEY_BITS,
    internal_hash,
    leaf_hash,
    value_hash,
)

__all__ = ["BatchBuilder"]

_R = MerkleErrorReason
_TOP_BIT = KEY_BITS - 1
_new = tuple.__new__  # builds a NamedTuple in C, skipping its Python-level __new__

# What a slot holds (``kinds``), with ``hashes``, ``versions``, ``leaves``, ``stored_at``:
#   _EMPTY:    the empty subtree (EMPTY_HASH, version 0);
#   _INTERIOR: an interior node already at its position (stored, or written in this batch);
#   _UNKNOWN:  an untouched child whose kind was not loaded (version: its node's version);
#   _LEAF:     a leaf whose final position is not settled yet: a parent left with it as its
#              only key hands it further up (the shortcut), so it is written once placed.
#              ``stored_at`` is where it already lives unchanged, if anywhere.
_EMPTY, _INTERIOR, _UNKNOWN, _LEAF = 0, 1, 2, 3
_TWO_EMPTY = (_EMPTY, _EMPTY)
_TWO_EMPTY_HASHES = (EMPTY_HASH, EMPTY_HASH)
_TWO_ZEROS = (0, 0)
_TWO_NONES = (None, None)


class BatchBuilder:
    """The sorted, checked updates of one ``apply`` and the nodes it writes and stales.

    ``updates`` are ``(key as integer, key, value or None)`` sorted by key, keys unique.
    """

    __slots__ = ("hashes", "key_ints", "keys", "kinds", "leaves", "new_nodes", "reader",
                 "stale", "stored_at", "values", "version", "versions")

    def __init__(self, reader: NodeReader,
                 updates: list[tuple[int, bytes, bytes | None]], version: int) -> None:
        self.reader = reader
        self.key_ints = [update[0] for update in updates]
        self.keys = [update[1] for update in updates]
        self.values = [update[2] for update in updates]
        self.version = version
        self.new_nodes: dict[NodeKey, Node] = {}
        self.stale: set[NodeKey] = set()
        self.kinds: list[int] = [_EMPTY]
        self.hashes: list[bytes] = [EMPTY_HASH]
        self.versions: list[int] = [0]
        self.leaves: list[LeafNode | None] = [None]
        self.stored_at: list[NodeKey | None] = [None]

    def load(self, node_key: NodeKey) -> Node:
        node = self.reader.get_node(node_key)
        if node is None:
            if node_key.depth == 0:
                raise MerkleError(_R.VERSION_NOT_FOUND,
                                  f"version {node_key.version} is unknown or pruned")
            raise MerkleError(_R.MISSING_NODE, f"node {node_key} is not in the store")
        return node

    # --- the whole apply ----------------------------------------------------------------

    def genesis(self) -> Node:
        """The root node of a tree holding exactly the inserts (no base version)."""
        self.fresh(0, 0, len(self.keys), 0, 0)
        return self.root_node(None)

    def update(self, base_version: int) -> Node:
        """The root node of ``base_version`` after the updates; fills the batch."""
        base_key: NodeKey = _new(NodeKey, (base_version, 0, 0))
        base_root = self.load(base_key)
        record_keys, record_nodes, record_slots = self.walk_down(base_key, base_root)
        hashes, kinds, versions = self.hashes, self.kinds, self.versions
        stale, join, place, new_nodes = self.stale, self.join, self.place, self.new_nodes
        version = self.version
        # Children before parents: both child slots of a record are final when it is reached.
        for index in range(len(record_keys) - 1, -1, -1):
            node_key, node, slot = record_keys[index], record_nodes[index], record_slots[index]
            left_slot = 2 * index + 1
            right_slot = left_slot + 1
            left_hash, right_hash = hashes[left_slot], hashes[right_slot]
            if left_hash == node.left_hash and right_hash == node.right_hash:
                kinds[slot] = _INTERIOR
                hashes[slot] = internal_hash(left_hash, right_hash)
                versions[slot] = node_key.version
                continue
            stale.add(node_key)
            left_kind, right_kind = kinds[left_slot], kinds[right_slot]
            if _EMPTY in (left_kind, right_kind):
                join(slot, node_key.depth, node_key.path, left_slot)
                continue
            # Both sides non-empty (the common case): a new interior node, inline.
            depth, path = node_key[1] + 1, node_key[2] << 1
            if left_kind == _LEAF:
                place(left_slot, depth, path)
            if right_kind == _LEAF:
                place(right_slot, depth, path | 1)
            new_nodes[_new(NodeKey, (version, depth - 1, node_key[2]))] = _new(
                InternalNode, (left_hash, versions[left_slot], right_hash, versions[right_slot]))
            kinds[slot] = _INTERIOR
            hashes[slot] = internal_hash(left_hash, right_hash)
            versions[slot] = version
        stale.add(base_key)
        return self.root_node(base_root)

    def walk_down(  # noqa: PLR0912, PLR0915 -- one flat loop per node is the fast path
        self, base_key: NodeKey, base_root: Node
    ) -> tuple[list[NodeKey], list[InternalNode], list[int]]:
        """Read the update paths level by level; settle leaves, empty and untouched children.

        Returns the interior nodes on the paths (key, node, the slot their result goes to),
        parents before children.
        """
        key_ints, stale, reader = self.key_ints, self.stale, self.reader
        kinds, hashes, versions = self.kinds, self.hashes, self.versions
        leaves, stored_at = self.leaves, self.stored_at
        fresh, update_leaf = self.fresh, self.update_leaf
        record_keys: list[NodeKey] = []
        record_nodes: list[InternalNode] = []
        record_slots: list[int] = []
        # One level of the walk, as parallel lists: node key, update range, slot.
        level_keys, level_lo, level_hi, level_slots = [base_key], [0], [len(key_ints)], [0]
        fetched: Mapping[NodeKey, Node] = {base_key: base_root}
        while level_keys:
            below_keys: list[NodeKey] = []
            below_lo: list[int] = []
            below_hi: list[int] = []
            below_slots: list[int] = []
            for node_key, lo, hi, slot in zip(level_keys, level_lo, level_hi, level_slots,
                                              strict=True):
                node = fetched.get(node_key)
                if node is None:
                    node = self.load(node_key)
                if type(node) is InternalNode:
                    left_slot = 2 * len(record_keys) + 1
                    record_keys.append(node_key)
                    record_nodes.append(node)
                    record_slots.append(slot)
                    kinds += _TWO_EMPTY
                    hashes += _TWO_EMPTY_HASHES
                    versions += _TWO_ZEROS
                    leaves += _TWO_NONES
                    stored_at += _TWO_NONES
                    depth, path = node_key[1], node_key[2]
                    child_depth, left_path = depth + 1, path << 1
                    mid = bisect_left(key_ints, (left_path | 1) << (_TOP_BIT - depth), lo, hi)
                    child_hash = node.left_hash
                    if lo == mid:
                        if child_hash != EMPTY_HASH:
                            kinds[left_slot] = _UNKNOWN
                            hashes[left_slot] = child_hash
                            versions[left_slot] = node.left_version
                    elif child_hash == EMPTY_HASH:
                        fresh(left_slot, lo, mid, child_depth, left_path)
                    else:
                        below_keys.append(_new(NodeKey, (node.left_version, child_depth,
                                                         left_path)))
                        below_lo.append(lo)
                        below_hi.append(mid)
                        below_slots.append(left_slot)
                    child_hash = node.right_hash
                    if mid == hi:
                        if child_hash != EMPTY_HASH:
                            kinds[left_slot + 1] = _UNKNOWN
                            hashes[left_slot + 1] = child_hash
                            versions[left_slot + 1] = node.right_version
                    elif child_hash == EMPTY_HASH:
                        fresh(left_slot + 1, mid, hi, child_depth, left_path | 1)
                    else:
                        below_keys.append(_new(NodeKey, (node.right_version, child_depth,
                                                         left_path | 1)))
                        below_lo.append(mid)
                        below_hi.append(hi)
                        below_slots.append(left_slot + 1)
                elif type(node) is LeafNode:
                    update_leaf(slot, node_key, node, lo, hi)
                else:  # the empty tree's root
                    stale.add(node_key)
                    fresh(slot, lo, hi, 0, 0)
            if below_keys:
                fetched = reader.get_nodes(below_keys)
            level_keys, level_lo, level_hi, level_slots = (below_keys, below_lo, below_hi,
                                                           below_slots)
        return record_keys, record_nodes, record_slots

    def root_node(self, base_root: Node | None) -> Node:
        """The node every version keeps at its root position (copied if unchanged)."""
        kind = self.kinds[0]
        if kind == _EMPTY:
            return NULL_NODE
        if kind == _LEAF:
            stored_at = self.stored_at[0]
            if stored_at is not None:
                self.stale.add(stored_at)
            return cast(LeafNode, self.leaves[0])
        written = self.new_nodes.get(_new(NodeKey, (self.versions[0], 0, 0)))
        # Not written in this batch: an unchanged interior root, i.e. the base root, copied.
        return written if written is not None else cast(Node, base_root)

    # --- settling subtrees --------------------------------------------------------------

    def set_leaf(self, slot: int, leaf: LeafNode, stored_at: NodeKey | None) -> None:
        self.kinds[slot] = _LEAF
        self.hashes[slot] = leaf_hash(leaf.key, leaf.value_hash)
        self.leaves[slot] = leaf
        self.stored_at[slot] = stored_at

    def update_leaf(self, slot: int, node_key: NodeKey, node: LeafNode, lo: int,
                    hi: int) -> None:
        """Settle ``slot``: the stored leaf at ``node_key`` after ``updates[lo:hi]``."""
        key_ints, values = self.key_ints, self.values
        leaf_int = int.from_bytes(node.key, "big")
        if hi - lo == 1 and key_ints[lo] == leaf_int:
            # The common case, short: one update, of this very leaf.
            value = values[lo]
            if value == node.value:
                self.set_leaf(slot, node, node_key)  # set to the value it has: unchanged
                return
            self.stale.add(node_key)
            if value is not None:  # (deleted: the slot stays empty)
                self.set_leaf(slot, _new(LeafNode, (node.key, value, value_hash(value))), None)
            return
        at = bisect_left(key_ints, leaf_int, lo, hi)
        inserted = [index for index in range(lo, hi) if values[index] is not None]
        if at < hi and key_ints[at] == leaf_int:
            if values[at] == node.value and len(inserted) == 1:
                self.set_leaf(slot, node, node_key)  # set to the value it has: unchanged
                return
            kept = None  # the leaf's own key is rewritten (or deleted) by the update
        elif not inserted:
            self.set_leaf(slot, node, node_key)  # only deletes of absent keys: unchanged
            return
        else:
            kept = node
        self.stale.add(node_key)
        leaf_ints = [key_ints[index] for index in inserted]
        leaves = self.new_leaves(inserted)
        if kept is not None:
            position = bisect_left(leaf_ints, leaf_int)
            leaf_ints.insert(position, leaf_int)
            leaves.insert(position, kept)
        self.build(slot, leaf_ints, leaves, node_key.depth, node_key.path)

    def new_leaves(self, indexes: list[int]) -> list[LeafNode]:
        keys, values = self.keys, self.values
        leaves = []
        for index in indexes:
            value = cast(bytes, values[index])
            leaves.append(_new(LeafNode, (keys[index], value, value_hash(value))))
        return leaves

    def fresh(self, slot: int, lo: int, hi: int, depth: int, path: int) -> None:
        """Settle ``slot``: a new subtree at ``(depth, path)`` holding the inserts of
        ``updates[lo:hi]`` (it was empty)."""
        values, key_ints = self.values, self.key_ints
        if hi - lo == 1:  # the common case, short: one new key lands in an empty subtree
            value = values[lo]
            if value is not None:
                self.set_leaf(slot, _new(LeafNode, (self.keys[lo], value, value_hash(value))),
                              None)
            return
        inserted = [index for index in range(lo, hi) if values[index] is not None]
        self.build(slot, [key_ints[index] for index in inserted], self.new_leaves(inserted),
                   depth, path)

    def build(self, slot: int, key_ints: list[int], leaves: list[LeafNode], depth: int,
              path: int) -> None:
        """Settle ``slot``: a fresh subtree holding exactly ``leaves`` (sorted, under
        ``path``); a lone leaf is left unplaced, two or more are written from here down."""
        if len(leaves) < 2:
            if leaves:
                self.set_leaf(slot, leaves[0], None)
            return
        self.kinds[slot] = _INTERIOR
        self.hashes[slot] = self._build_interior(leaves, key_ints, 0, len(leaves),
                                                 depth=depth, path=path)
        self.versions[slot] = self.version

    def _build_interior(self, leaves: list[LeafNode], key_ints: list[int], lo: int, hi: int,
                        *, depth: int, path: int) -> bytes:
        """Write the interior node holding ``leaves[lo:hi]`` (two or more) and all below it.

        The bulk-load path: a range of two or more keys is always an interior node and a
        range of one is a leaf right below it, so nothing here ever collapses. Index ranges
        over parallel lists (no slicing) keep it O(n log n) in C-level bisects.
        """
        version, new_nodes = self.version, self.new_nodes
        child_depth, left_path = depth + 1, path << 1
        mid = bisect_left(key_ints, (left_path | 1) << (_TOP_BIT - depth), lo, hi)
        if mid - lo >= 2:
            left_hash = self._build_interior(leaves, key_ints, lo, mid, depth=child_depth,
                                             path=left_path)
        elif mid > lo:
            leaf = leaves[lo]
            left_hash = leaf_hash(leaf.key, leaf.value_hash)
            new_nodes[_new(NodeKey, (version, child_depth, left_path))] = leaf
        else:
            left_hash = EMPTY_HASH
        if hi - mid >= 2:
            right_hash = self._build_interior(leaves, key_ints, mid, hi, depth=child_depth,
                                              path=left_path | 1)
        elif hi > mid:
            leaf = leaves[mid]
            right_hash = leaf_hash(leaf.key, leaf.value_hash)
            new_nodes[_new(NodeKey, (version, child_depth, left_path | 1))] = leaf
        else:
            right_hash = EMPTY_HASH
        new_nodes[_new(NodeKey, (version, depth, path))] = _new(InternalNode, (
            left_hash, version if mid > lo else 0, right_hash, version if hi > mid else 0))
        return internal_hash(left_hash, right_hash)

    def join(self, slot: int, depth: int, path: int, left_slot: int) -> None:
        """Settle ``slot`` at ``(depth, path)`` from its children in ``left_slot`` and
        ``left_slot + 1``: a new interior node, or a lone leaf collapsed up."""
        kinds = self.kinds
        right_slot = left_slot + 1
        left_kind, right_kind = kinds[left_slot], kinds[right_slot]
        if _EMPTY in (left_kind, right_kind):
            only = right_slot if left_kind == _EMPTY else left_slot
            only_kind = kinds[only]
            if only_kind in (_EMPTY, _LEAF):
                kinds[slot] = only_kind
                self.hashes[slot] = self.hashes[only]
                self.leaves[slot] = self.leaves[only]
                self.stored_at[slot] = self.stored_at[only]
                return
            if only_kind == _UNKNOWN:
                # An untouched sibling whose other side emptied: if it is a leaf it moves up.
                child_key: NodeKey = _new(NodeKey, (self.versions[only], depth + 1,
                                                    (path << 1) | (only == right_slot)))
                stored = self.load(child_key)
                if type(stored) is LeafNode:
                    self.set_leaf(slot, stored, child_key)
                    return
        place, hashes, versions, version = self.place, self.hashes, self.versions, self.version
        place(left_slot, depth + 1, path << 1)
        place(right_slot, depth + 1, (path << 1) | 1)
        left_hash, right_hash = hashes[left_slot], hashes[right_slot]
        self.new_nodes[_new(NodeKey, (version, depth, path))] = _new(
            InternalNode, (left_hash, versions[left_slot], right_hash, versions[right_slot]))
        kinds[slot] = _INTERIOR
        hashes[slot] = internal_hash(left_hash, right_hash)
        versions[slot] = version

    def place(self, slot: int, depth: int, path: int) -> None:
        """Settle the subtree in ``slot`` at ``(depth, path)``: write a leaf that lands
        somewhere new; afterwards ``versions[slot]`` is the version of its node there."""
        if self.kinds[slot] != _LEAF:
            return  # empty, or an interior node already in place
        stored_at = self.stored_at[slot]
        if stored_at is not None:
            if stored_at.depth == depth:
                self.versions[slot] = stored_at.version
                return
            self.stale.add(stored_at)
        self.new_nodes[_new(NodeKey, (self.version, depth, path))] = cast(LeafNode,
                                                                            self.leaves[slot])
        self.versions[slot] = self.version
