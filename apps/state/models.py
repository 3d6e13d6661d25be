"""The authenticated state on disk: Merkle nodes, materialized values, roots, snapshots.

* :class:`StateNode` is the sparse Merkle tree's node store (``cybermesh.protocol.merkle``):
  one immutable row per node, keyed by the canonical :class:`NodeKey` bytes (version, depth,
  path); :class:`StaleNode` is its pruning index.
* :class:`StateValue` is the plan's ``state_kv``: the materialized value of each tree key at
  each version that changed it (``value`` NULL: deleted), so reads need no tree walk and a full
  state at any retained version can be listed (export, snapshots).
* :class:`StateVersion` has one root per height; :class:`StateSnapshot` marks every K-th
  height, and pruning never goes past the most recent snapshot below its horizon.
"""

from __future__ import annotations

from django.db import models


class StateNode(models.Model):
    node_key = models.BinaryField(max_length=48, primary_key=True)
    version = models.BigIntegerField()
    data = models.BinaryField()

    class Meta:
        db_table = "state_nodes"
        ordering = ["node_key"]

    def __str__(self) -> str:
        return f"node {bytes(self.node_key).hex()}"


class StaleNode(models.Model):
    """A node that version ``stale_since`` replaced: needed only by versions before it."""

    pk = models.CompositePrimaryKey("stale_since", "node_key")
    stale_since = models.BigIntegerField()
    node_key = models.BinaryField(max_length=48)

    class Meta:
        db_table = "state_stale_nodes"
        ordering = ["stale_since", "node_key"]

    def __str__(self) -> str:
        return f"stale since {self.stale_since}: {bytes(self.node_key).hex()}"


class StateValue(models.Model):
    """``state_kv``: the value of tree key ``key_hash`` from ``version`` on (NULL: deleted).

    ``key_hash`` is the 32-byte sparse Merkle tree key the executor derived (namespace and
    identity are hashed into it, see ``cybermesh.protocol.executor.keys``); ``namespace`` is an
    optional label for people reading the table, not part of the key.
    """

    pk = models.CompositePrimaryKey("key_hash", "version")
    key_hash = models.BinaryField(max_length=32)
    version = models.BigIntegerField()
    namespace = models.CharField(max_length=64, blank=True)
    value = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "state_kv"
        ordering = ["key_hash", "version"]
        indexes = [
            models.Index(fields=["version"], name="state_kv_version_idx"),
            models.Index(fields=["namespace", "key_hash", "version"],
                         name="state_kv_namespace_idx"),
        ]

    def __str__(self) -> str:
        return f"{bytes(self.key_hash).hex()[:16]}@{self.version}"


class StateVersion(models.Model):
    """One state root per height (the root after executing the block at ``version``)."""

    version = models.BigIntegerField(primary_key=True)
    root_hash = models.BinaryField(max_length=32)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "state_versions"
        ordering = ["version"]

    def __str__(self) -> str:
        return f"state {self.version} {bytes(self.root_hash).hex()[:16]}"


class StateSnapshot(models.Model):
    """Every K-th height: a version guaranteed to stay readable until a later one exists.

    The plan keyed snapshots by ``state_root``; two heights with no state change share a
    root, so the height is the key here and the root an indexed column.
    """

    version_height = models.BigIntegerField(primary_key=True)
    state_root = models.BinaryField(max_length=32, db_index=True)
    created_at = models.DateTimeField()
    meta = models.JSONField(default=dict)

    class Meta:
        db_table = "state_snapshots"
        ordering = ["version_height"]

    def __str__(self) -> str:
        return f"snapshot {self.version_height}"


class PruneMark(models.Model):
    """The single row holding the retention horizon: versions below it are not readable."""

    name = models.CharField(max_length=32, primary_key=True)
    min_retained_version = models.BigIntegerField()
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "state_prune_mark"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: >= {self.min_retained_version}"
