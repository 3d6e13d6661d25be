"""Versioned node storage of the sparse Merkle tree: keys, nodes, batches, the store protocol.

The layout follows the Jellyfish Merkle tree (Diem, Aptos): a node is written once, under a
:class:`NodeKey` made of the version (block height) that created it and its position (depth
and the key-bit prefix leading to it), and is never changed afterwards. An interior node keeps
its children's hashes *and versions*, so a reader walks from the root of any version to any
leaf by point lookups, and a new version shares every untouched subtree with the old one.

Each version has exactly one root node, at ``NodeKey(version, 0, 0)``: an
:class:`InternalNode`, a :class:`LeafNode` (a one-key tree) or the :data:`NULL_NODE` (empty
tree). When a version replaces a node, the old node's key is recorded as *stale since* that
version; it is still needed by older versions only, so pruning with a retention horizon
``min_retained_version`` deletes exactly the nodes stale since a version ``<=`` it.

The :class:`NodeStore` protocol is what a backend implements: :class:`InMemoryNodeStore` here,
and the Django ``apps.state`` backend on PostgreSQL/CockroachDB. Keys and nodes have canonical
encodings (:meth:`NodeKey.encode`, :func:`node_to_wire`) so every backend stores the same bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, KeysView, Mapping
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeAlias

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.sparse_hashing import (
    EMPTY_HASH,
    HASH_SIZE,
    KEY_BITS,
    KEY_SIZE,
    internal_hash,
    leaf_hash,
    value_hash,
)

__all__ = [
    "NULL_NODE",
    "InMemoryNodeStore",
    "InternalNode",
    "LeafNode",
    "Node",
    "NodeBatch",
    "NodeKey",
    "NodeKind",
    "NodeReader",
    "NodeStore",
    "NullNode",
    "StagedNodeReader",
    "node_from_wire",
    "node_to_wire",
]

MAX_VERSION = (1 << 64) - 1
_R = MerkleErrorReason


class NodeKey(NamedTuple):
    """Where a node lives: the version that wrote it and its position in the tree.

    ``path`` is the integer made of the first ``depth`` bits of every key below the node
    (``0 <= path < 2**depth``); the root is ``NodeKey(version, 0, 0)``. A NamedTuple rather
    than a frozen dataclass on purpose: it is the dictionary key of every node read or
    written, and tuple hashing and comparison run in C (a third of ``apply``'s time before).
    """

    version: int
    depth: int
    path: int

    def child(self, version: int, bit: int) -> NodeKey:
        return NodeKey(version, self.depth + 1, (self.path << 1) | bit)

    def encode(self) -> bytes:
        """Canonical bytes: version (u64 BE), depth (u16 BE), path bits left-aligned."""
        path_bytes = (self.depth + 7) // 8
        aligned = self.path << (8 * path_bytes - self.depth)
        return (self.version.to_bytes(8, "big") + self.depth.to_bytes(2, "big")
                + aligned.to_bytes(path_bytes, "big"))

    @classmethod
    def decode(cls, data: bytes) -> NodeKey:
        """Inverse of :meth:`encode`; refuses anything :meth:`encode` would not produce."""
        if len(data) < 10:
            raise MerkleError(_R.MALFORMED_NODE, "node key shorter than 10 bytes")
        version = int.from_bytes(data[:8], "big")
        depth = int.from_bytes(data[8:10], "big")
        path_bytes = (depth + 7) // 8
        if depth > KEY_BITS or len(data) != 10 + path_bytes:
            raise MerkleError(_R.MALFORMED_NODE, "node key depth and length disagree")
        aligned = int.from_bytes(data[10:], "big")
        padding = 8 * path_bytes - depth
        if aligned & ((1 << padding) - 1):
            raise MerkleError(_R.MALFORMED_NODE, "node key padding bits are not zero")
        return cls(version, depth, aligned >> padding)


class NodeKind(enum.IntEnum):
    NULL = 0
    LEAF = 1
    INTERNAL = 2


@dataclass(frozen=True, slots=True)
class NullNode:
    """The root of an empty tree (only ever stored at a root position)."""

    @property
    def hash(self) -> bytes:
        return EMPTY_HASH


NULL_NODE = NullNode()


class LeafNode(NamedTuple):
    """A subtree holding exactly one key; ``value_hash`` is derived from ``value``.

    Leaf and interior nodes are NamedTuples rather than frozen dataclasses on purpose, like
    :class:`NodeKey`: ``apply`` creates one per written node, and a tuple is built in C (about
    a quarter of the cost) and, holding only bytes and ints, is untracked by the cyclic
    garbage collector, which otherwise rescans every node of a large in-memory tree.
    """

    key: bytes
    value: bytes
    value_hash: bytes

    @classmethod
    def of(cls, key: bytes, value: bytes) -> LeafNode:
        return cls(key, value, value_hash(value))

    @property
    def hash(self) -> bytes:
        return leaf_hash(self.key, self.value_hash)


class InternalNode(NamedTuple):
    """A subtree holding two or more keys; an empty side has ``EMPTY_HASH`` and version 0."""

    left_hash: bytes
    left_version: int
    right_hash: bytes
    right_version: int

    @property
    def hash(self) -> bytes:
        return internal_hash(self.left_hash, self.right_hash)


Node: TypeAlias = NullNode | LeafNode | InternalNode


def node_to_wire(node: Node) -> list[CborValue]:
    """Plain data for the canonical codec: ``[kind, fields...]``."""
    if isinstance(node, LeafNode):
        return [NodeKind.LEAF.value, node.key, node.value]
    if isinstance(node, InternalNode):
        return [NodeKind.INTERNAL.value, node.left_hash, node.left_version,
                node.right_hash, node.right_version]
    return [NodeKind.NULL.value]


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_version(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_VERSION


def node_from_wire(data: object) -> Node:
    """Inverse of :func:`node_to_wire`, strict: a stored node is checked like input."""
    if not isinstance(data, list | tuple) or not data or type(data[0]) is not int:
        raise MerkleError(_R.MALFORMED_NODE, "node is not a [kind, ...] list")
    kind, fields = data[0], data[1:]
    if kind == NodeKind.NULL and not fields:
        return NULL_NODE
    if kind == NodeKind.LEAF and len(fields) == 2:
        key, value = fields
        if isinstance(key, bytes) and len(key) == KEY_SIZE and isinstance(value, bytes):
            return LeafNode.of(key, value)
    if kind == NodeKind.INTERNAL and len(fields) == 4:
        left_hash, left_version, right_hash, right_version = fields
        if (_is_hash(left_hash) and _is_hash(right_hash)
                and _is_version(left_version) and _is_version(right_version)):
            return InternalNode(left_hash, left_version, right_hash, right_version)
    raise MerkleError(_R.MALFORMED_NODE, f"bad fields for node kind {kind}")


@dataclass(frozen=True, slots=True)
class NodeBatch:
    """What one :meth:`SparseMerkleTree.apply` produced and a backend must persist atomically.

    ``nodes`` are new, all written at ``version``; ``stale`` are keys of older nodes that this
    version replaced, i.e. stale since ``version`` (rows for the pruning index).
    """

    version: int
    root_hash: bytes
    nodes: tuple[tuple[NodeKey, Node], ...]
    stale: tuple[NodeKey, ...]


class NodeReader(Protocol):
    """Read side of node storage; a missing node is ``None`` / absent, never an exception."""

    def get_node(self, node_key: NodeKey) -> Node | None: ...

    def get_nodes(self, node_keys: Collection[NodeKey]) -> Mapping[NodeKey, Node]:
        """Fetch many nodes at once (one query per tree level when applying a batch)."""
        ...


class NodeStore(NodeReader, Protocol):
    """A durable node store: write a batch atomically, prune behind a retention horizon."""

    def write_batch(self, batch: NodeBatch) -> None: ...

    def prune(self, min_retained_version: int) -> int:
        """Delete nodes stale since a version ``<= min_retained_version`` and their stale
        records; versions ``>= min_retained_version`` stay fully readable. Returns the number
        of nodes deleted."""
        ...


class InMemoryNodeStore:
    """Dictionary-backed :class:`NodeStore` for tests, simulations and benchmarks."""

    __slots__ = ("_nodes", "_stale")

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, Node] = {}
        self._stale: dict[int, set[NodeKey]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def get_node(self, node_key: NodeKey) -> Node | None:
        return self._nodes.get(node_key)

    def get_nodes(self, node_keys: Collection[NodeKey]) -> Mapping[NodeKey, Node]:
        get = self._nodes.get
        return {key: node for key in node_keys if (node := get(key)) is not None}

    def write_batch(self, batch: NodeBatch) -> None:
        """Persist ``batch``. Writing the same batch twice is a no-op; writing a *different*
        root for a version that already has one is refused (that is a fork in storage)."""
        root_key = NodeKey(batch.version, 0, 0)
        existing = self._nodes.get(root_key)
        if existing is not None and existing.hash != batch.root_hash:
            raise MerkleError(_R.CONFLICTING_BATCH,
                              f"version {batch.version} already has another root")
        self._nodes.update(batch.nodes)
        if batch.stale:
            self._stale.setdefault(batch.version, set()).update(batch.stale)

    def prune(self, min_retained_version: int) -> int:
        deleted = 0
        for since in sorted(v for v in self._stale if v <= min_retained_version):
            for node_key in self._stale.pop(since):
                if self._nodes.pop(node_key, None) is not None:
                    deleted += 1
        return deleted

    def node_keys(self) -> KeysView[NodeKey]:
        return self._nodes.keys()

    def stale_count(self) -> int:
        return sum(len(keys) for keys in self._stale.values())


class StagedNodeReader:
    """A reader that sees unpersisted batches on top of a store.

    Consensus executes a proposal before it commits, on a parent that may itself be
    uncommitted: stage the parents' batches here, apply on top, and persist only the batches
    of blocks that commit (two forks at one height must never both reach the store).
    """

    __slots__ = ("_base", "_staged")

    def __init__(self, base: NodeReader, batches: Iterable[NodeBatch] = ()) -> None:
        self._base = base
        self._staged: dict[NodeKey, Node] = {}
        for batch in batches:
            self.stage(batch)

    def stage(self, batch: NodeBatch) -> None:
        self._staged.update(batch.nodes)

    def get_node(self, node_key: NodeKey) -> Node | None:
        node = self._staged.get(node_key)
        return node if node is not None else self._base.get_node(node_key)

    def get_nodes(self, node_keys: Collection[NodeKey]) -> Mapping[NodeKey, Node]:
        staged_get = self._staged.get
        found: dict[NodeKey, Node] = {}
        missing: list[NodeKey] = []
        for key in node_keys:
            node = staged_get(key)
            if node is None:
                missing.append(key)
            else:
                found[key] = node
        if missing:
            found.update(self._base.get_nodes(missing))
        return found
