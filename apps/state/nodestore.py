"""The sparse Merkle tree's :class:`~cybermesh.protocol.merkle.nodestore.NodeStore` on the DB.

Rows hold the canonical bytes the protocol defines (``NodeKey.encode()`` as the key,
canonical CBOR of ``node_to_wire`` as the data), so every backend, and every export, stores the
same bytes. A node row is never updated: ``write_batch`` inserts with ``ON CONFLICT DO
NOTHING`` after checking that the version does not already have a *different* root.

``write_batch`` must run inside the caller's transaction (the block commit): nodes, stale
records and the block become visible together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from django.db import connections, transaction

from apps.state.models import StaleNode, StateNode
from cybermesh.protocol.codec import decode, encode
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    Node,
    NodeBatch,
    NodeKey,
    node_from_wire,
    node_to_wire,
)

# Keys per SELECT ... IN (...): well below every backend's parameter limit.
_READ_CHUNK = 2000
_WRITE_BATCH = 2000


def encode_node(node: Node) -> bytes:
    return encode(node_to_wire(node))


def decode_node(data: bytes | memoryview) -> Node:
    return node_from_wire(decode(bytes(data)))


class DatabaseNodeStore:
    """A :class:`NodeStore` over the ``state_nodes`` / ``state_stale_nodes`` tables.

    ``cache`` (optional, bounded by the caller) keeps decoded nodes by key: nodes are
    immutable, so a cached node can never be out of date, only pruned (``prune`` clears it).
    """

    def __init__(self, *, using: str = "default", cache: dict[NodeKey, Node] | None = None
                 ) -> None:
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
            if cache is not None and node_key in cache:
                found[node_key] = cache[node_key]
            else:
                wanted[node_key.encode()] = node_key
        keys = list(wanted)
        for start in range(0, len(keys), _READ_CHUNK):
            rows = (StateNode.objects.using(self.using)
                    .filter(node_key__in=keys[start:start + _READ_CHUNK])
                    .values_list("node_key", "data"))
            for raw_key, data in rows:
                node_key = wanted[bytes(raw_key)]
                node = decode_node(data)
                found[node_key] = node
                if cache is not None:
                    cache[node_key] = node
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
        StateNode.objects.using(self.using).bulk_create(
            (StateNode(node_key=node_key.encode(), version=node_key.version,
                       data=encode_node(node)) for node_key, node in batch.nodes),
            batch_size=_WRITE_BATCH, ignore_conflicts=True)
        StaleNode.objects.using(self.using).bulk_create(
            (StaleNode(stale_since=batch.version, node_key=node_key.encode())
             for node_key in batch.stale),
            batch_size=_WRITE_BATCH, ignore_conflicts=True)
        if self._cache is not None:
            self._cache.update(batch.nodes)

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
