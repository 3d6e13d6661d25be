"""The sparse Merkle tree's :class:`~cybermesh.protocol.merkle.nodestore.NodeStore` on the DB.

Rows hold the canonical bytes the protocol defines (``NodeKey.encode()`` as the key,
canonical CBOR of ``node_to_wire`` as the data), so every backend, and every export, stores the
same bytes. A node row is never updated: ``write_batch`` inserts with ``ON CONFLICT DO
NOTHING`` after checking that the version does not already have a *different* root.

``write_batch`` must run inside the caller's transaction (the block commit): nodes, stale
records and the block become visible together or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping

from django.db import connections, transaction

from apps.ledger.bulk_insert import insert_rows
from apps.state.models import StaleNode, StateNode
from cybermesh.protocol.codec import decode
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    InternalNode,
    LeafNode,
    Node,
    NodeBatch,
    NodeKey,
    NodeKind,
    node_from_wire,
)

# Keys per SELECT ... IN (...): well below every backend's parameter limit.
_READ_CHUNK = 2000


def _uint(value: int) -> bytes:
    """CBOR head of an unsigned integer (major type 0), shortest form."""
    if value < 24:
        return bytes((value,))
    if value < 0x100:
        return bytes((0x18, value))
    if value < 0x10000:
        return b"\x19" + value.to_bytes(2, "big")
    if value < 0x100000000:
        return b"\x1a" + value.to_bytes(4, "big")
    return b"\x1b" + value.to_bytes(8, "big")


def _bytes_head(length: int) -> bytes:
    """CBOR head of a byte string (major type 2) of ``length`` bytes."""
    head = _uint(length)
    return bytes((head[0] | 0x40,)) + head[1:]


_HASH_HEAD = _bytes_head(32)
_INTERNAL_PREFIX = bytes((0x85, NodeKind.INTERNAL.value)) + _HASH_HEAD
_LEAF_PREFIX = bytes((0x83, NodeKind.LEAF.value)) + _HASH_HEAD
_NULL_BYTES = bytes((0x81, NodeKind.NULL.value))


def encode_node(node: Node) -> bytes:
    """``encode(node_to_wire(node))``, written out for the two shapes a commit writes by the
    ten thousand (a test holds it byte-identical to the general codec)."""
    if isinstance(node, InternalNode):
        return b"".join((_INTERNAL_PREFIX, node.left_hash, _uint(node.left_version),
                         _HASH_HEAD, node.right_hash, _uint(node.right_version)))
    if isinstance(node, LeafNode):
        return b"".join((_LEAF_PREFIX, node.key, _bytes_head(len(node.value)), node.value))
    return _NULL_BYTES


def decode_node(data: bytes | memoryview) -> Node:
    return node_from_wire(decode(bytes(data)))


class NodeCache:
    """A bounded cache of committed nodes, shared by the block commits of one process.

    Nodes are immutable, so a cached node cannot go out of date while the database keeps its
    history; only nodes of *committed* transactions enter (``write_batch`` adds its nodes in
    ``on_commit``; reads see committed rows of earlier versions only). The cache trusts
    itself only for the next version of the chain it last saw committed: ``tip`` names
    (database, version, root) of that commit, and :meth:`ensure_tip` empties the cache when a
    commit builds on anything else (another process committed in between, the database was
    restored or rebuilt, an earlier attempt rolled back). When full, the oldest half goes.
    """

    def __init__(self, max_nodes: int = 200_000) -> None:
        self.max_nodes = max_nodes
        self._nodes: dict[NodeKey, Node] = {}
        self._tip: tuple[str, int | None, bytes] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, node_key: NodeKey) -> Node | None:
        return self._nodes.get(node_key)

    def update(self, nodes: Iterable[tuple[NodeKey, Node]]) -> None:
        with self._lock:
            self._nodes.update(nodes)
            if len(self._nodes) > self.max_nodes:
                self._nodes = dict(list(self._nodes.items())[len(self._nodes) // 2:])

    def ensure_tip(self, tip: tuple[str, int | None, bytes]) -> None:
        """Keep the cache only if ``tip`` is the commit it last saw (else empty it)."""
        with self._lock:
            if self._tip != tip:
                self._nodes = {}
                self._tip = None

    def committed(self, tip: tuple[str, int | None, bytes],
                  nodes: Iterable[tuple[NodeKey, Node]]) -> None:
        self.update(nodes)
        with self._lock:
            self._tip = tip

    def clear(self) -> None:
        with self._lock:
            self._nodes = {}
            self._tip = None


class DatabaseNodeStore:
    """A :class:`NodeStore` over the ``state_nodes`` / ``state_stale_nodes`` tables.

    ``cache`` (optional) is a :class:`NodeCache`; the block commit passes the process-wide
    one, reads that must see exactly the stored bytes (verification, proofs) pass none.
    """

    def __init__(self, *, using: str = "default", cache: NodeCache | None = None) -> None:
        self.using = using
        self._cache = cache

    # --- reads ------------------------------------------------------------------------

    def get_node(self, node_key: NodeKey) -> Node | None:
        return self.get_nodes([node_key]).get(node_key)

    def get_nodes(self, node_keys: Collection[NodeKey]) -> Mapping[NodeKey, Node]:
        found: dict[NodeKey, Node] = {}
        cache = self._cache
        wanted: dict[bytes, NodeKey] = {}
        for node_key in node_keys:
            node = cache.get(node_key) if cache is not None else None
            if node is not None:
                found[node_key] = node
            else:
                wanted[node_key.encode()] = node_key
        keys = list(wanted)
        for start in range(0, len(keys), _READ_CHUNK):
            rows = (StateNode.objects.using(self.using)
                    .filter(node_key__in=keys[start:start + _READ_CHUNK])
                    .values_list("node_key", "data"))
            for raw_key, data in rows:
                node_key = wanted[bytes(raw_key)]
                found[node_key] = decode_node(data)
        if cache is not None and wanted:
            # Rows of earlier versions are committed (the commit reads only its base version).
            cache.update((key, node) for key, node in found.items() if key.encode() in wanted)
        return found

    # --- writes -----------------------------------------------------------------------

    def write_batch(self, batch: NodeBatch) -> None:
        """Persist ``batch`` in the caller's transaction; the same batch twice is a no-op, a
        different root for a version that has one is refused (a fork in storage)."""
        if not connections[self.using].in_atomic_block:
            raise transaction.TransactionManagementError(
                "write_batch must run inside the block commit transaction")
        root_key = NodeKey(batch.version, 0, 0)
        existing = self.get_node(root_key)
        if existing is not None:
            if existing.hash != batch.root_hash:
                raise MerkleError(MerkleErrorReason.CONFLICTING_BATCH,
                                  f"version {batch.version} already has another root")
            return
        insert_rows(StateNode, ("node_key", "version", "data"),
                    [(node_key.encode(), node_key.version, encode_node(node))
                     for node_key, node in batch.nodes], using=self.using)
        insert_rows(StaleNode, ("stale_since", "node_key"),
                    [(batch.version, node_key.encode()) for node_key in batch.stale],
                    using=self.using)
        cache = self._cache
        if cache is not None:
            tip, nodes = (self.using, batch.version, batch.root_hash), batch.nodes
            transaction.on_commit(lambda: cache.committed(tip, nodes), using=self.using)

    def prune(self, min_retained_version: int) -> int:
        """Delete the nodes stale since a version ``<= min_retained_version`` (and their stale
        records); every version ``>= min_retained_version`` stays readable."""
        stale = StaleNode.objects.using(self.using).filter(
            stale_since__lte=min_retained_version)
        keys = list(stale.values_list("node_key", flat=True))
        deleted = 0
        for chunk in _chunks([bytes(key) for key in keys], _READ_CHUNK):
            deleted += StateNode.objects.using(self.using).filter(node_key__in=chunk).delete()[0]
        stale.delete()
        if self._cache is not None:
            self._cache.clear()
        return deleted


def _chunks(items: list[bytes], size: int) -> Iterable[list[bytes]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
