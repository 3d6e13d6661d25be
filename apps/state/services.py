"""Writes to the authenticated state: one version per height, snapshots, pruning.

:func:`write_state_version` runs inside the block commit transaction: it applies the block's
updates to the tree of the parent version (read from the database in that same serializable
transaction), writes the new nodes, the stale index, the materialized values and the root.
The tree's shape is canonical, so the root depends only on the resulting key/value set: two
databases fed the same blocks compute the same root at every height.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from apps.ledger.bulk_insert import insert_rows
from apps.ledger.records import PreparedState, StateUpdate
from apps.state.keys import MAX_NAMESPACE_CHARS
from apps.state.models import PruneMark, StateSnapshot, StateValue, StateVersion
from apps.state.nodestore import DatabaseNodeStore, NodeCache
from cybermesh.db import run_serializable
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.merkle.sparse_hashing import KEY_SIZE

DEFAULT_SNAPSHOT_INTERVAL = 100
PRUNE_MARK = "state"
# Nodes read and written by block commits in this process (see NodeCache).
COMMIT_NODE_CACHE = NodeCache()


class StateError(Exception):
    """A state write or read that cannot be done (unknown, pruned or conflicting version)."""


@dataclass(frozen=True, slots=True)
class StateWrite:
    version: int
    root_hash: bytes
    nodes_written: int
    values_written: int
    snapshot: bool


def _require_transaction(using: str) -> None:
    if not connections[using].in_atomic_block:
        raise transaction.TransactionManagementError(
            "state writes must run inside the block commit transaction")


def latest_version(*, using: str = "default") -> int | None:
    top: int | None = StateVersion.objects.using(using).aggregate(top=Max("version"))["top"]
    return top


def _dedupe(updates: Sequence[StateUpdate]) -> dict[bytes, StateUpdate]:
    """Tree key -> the last update of that key (a later update of one key wins)."""
    by_key: dict[bytes, StateUpdate] = {}
    for update in updates:
        if type(update.key) is not bytes or len(update.key) != KEY_SIZE:
            raise StateError("state keys must be 32-byte tree keys")
        if len(update.namespace) > MAX_NAMESPACE_CHARS:
            raise StateError(f"state namespace label exceeds {MAX_NAMESPACE_CHARS} characters")
        by_key[update.key] = update
    return by_key


def write_state_version(
    *,
    version: int,
    base_version: int | None,
    updates: Sequence[StateUpdate],
    snapshot_interval: int = DEFAULT_SNAPSHOT_INTERVAL,
    prepared: PreparedState | None = None,
    now: datetime | None = None,
    using: str = "default",
) -> StateWrite:
    """Build state ``version`` from ``base_version`` (None: the empty state) plus ``updates``
    and write it, in the caller's transaction. Returns the new root.

    ``prepared`` (from :func:`prepare_state_version`) is written as it is when it was built on
    the base version's stored root; otherwise the tree is recomputed here."""
    _require_transaction(using)
    now = now or timezone.now()
    if StateVersion.objects.using(using).filter(version=version).exists():
        raise StateError(f"state version {version} is already written")
    base_root = b""
    if base_version is not None:
        found = (StateVersion.objects.using(using).filter(version=base_version)
                 .values_list("root_hash", flat=True).first())
        if found is None:
            raise StateError(f"base state version {base_version} is unknown or pruned")
        base_root = bytes(found)
    COMMIT_NODE_CACHE.ensure_tip((using, base_version, base_root))
    by_hash = _dedupe(updates)
    store = DatabaseNodeStore(using=using, cache=COMMIT_NODE_CACHE)
    if (prepared is not None and prepared.batch.version == version
            and prepared.base_root == base_root):
        batch = prepared.batch
    else:
        _, batch = SparseMerkleTree(store).apply(
            base_version, {key_hash: update.value for key_hash, update in by_hash.items()},
            version)
    root = batch.root_hash
    store.write_batch(batch)
    insert_rows(StateValue, ("key_hash", "version", "namespace", "value", "created_at"),
                [(key_hash, version, update.namespace, update.value, now)
                 for key_hash, update in sorted(by_hash.items())], using=using)
    StateVersion.objects.using(using).create(version=version, root_hash=root, created_at=now)
    snapshot = snapshot_interval > 0 and version % snapshot_interval == 0
    if snapshot:
        StateSnapshot.objects.using(using).create(
            version_height=version, state_root=root, created_at=now,
            meta={"nodes_written": len(batch.nodes), "values_written": len(by_hash)})
    return StateWrite(version=version, root_hash=root, nodes_written=len(batch.nodes),
                      values_written=len(by_hash), snapshot=snapshot)


def prepare_state_version(*, version: int, base_version: int | None,
                          updates: Sequence[StateUpdate],
                          using: str = "default") -> PreparedState:
    """Compute (not write) the tree batch of ``version``, outside the commit transaction:
    the base version's nodes are committed and immutable, so the batch stays valid for the
    commit as long as the base root it names is still the stored one (the commit checks)."""
    base_root = b""
    if base_version is not None:
        found = (StateVersion.objects.using(using).filter(version=base_version)
                 .values_list("root_hash", flat=True).first())
        if found is None:
            raise StateError(f"base state version {base_version} is unknown or pruned")
        base_root = bytes(found)
    by_hash = _dedupe(updates)
    store = DatabaseNodeStore(using=using)
    _, batch = SparseMerkleTree(store).apply(
        base_version, {key_hash: update.value for key_hash, update in by_hash.items()}, version)
    return PreparedState(base_root=base_root, batch=batch)


def initialize_state(*, version: int, updates: Sequence[StateUpdate],
                     using: str = "default") -> StateWrite:
    """Write the first state version (genesis state, or the base of an imported archive) in
    its own serializable transaction. Refused when any state already exists."""

    def write() -> StateWrite:
        if StateVersion.objects.using(using).exists():
            raise StateError("state already exists; initialize_state only starts an empty one")
        return write_state_version(version=version, base_version=None, updates=updates,
                                   snapshot_interval=0, using=using)

    return run_serializable(write, using=using, operation="initialize_state")


def min_retained_version(*, using: str = "default") -> int:
    mark = PruneMark.objects.using(using).filter(name=PRUNE_MARK).first()
    return mark.min_retained_version if mark else 0


@dataclass(frozen=True, slots=True)
class PruneResult:
    requested_horizon: int
    min_retained_version: int
    nodes_deleted: int
    values_deleted: int


def prune_state(*, horizon: int, using: str = "default") -> PruneResult:
    """Make versions below ``horizon`` unreadable and delete what only they needed.

    The horizon is lowered to the most recent snapshot at or below it (so the newest
    snapshot before the horizon, and everything after it, stays readable and exportable)
    and never moves backwards. Deletes Merkle nodes stale since a version <= the horizon and
    materialized values superseded at or before it. One serializable transaction.
    """

    def prune() -> PruneResult:
        snapshot = (StateSnapshot.objects.using(using).filter(version_height__lte=horizon)
                    .aggregate(top=Max("version_height"))["top"])
        current = min_retained_version(using=using)
        effective = max(current, snapshot if snapshot is not None else 0)
        if effective <= current:
            return PruneResult(horizon, current, 0, 0)
        nodes_deleted = DatabaseNodeStore(using=using).prune(effective)
        values = StateValue.objects.using(using)
        superseded = values.filter(version__lte=effective).filter(Exists(
            values.filter(key_hash=OuterRef("key_hash"),
                          version__gt=OuterRef("version"), version__lte=effective)))
        values_deleted = superseded.delete()[0]
        # A deletion at or before the horizon with nothing older left is just absence.
        values_deleted += values.filter(version__lte=effective, value__isnull=True).delete()[0]
        StateVersion.objects.using(using).filter(version__lt=effective).delete()
        PruneMark.objects.using(using).update_or_create(
            name=PRUNE_MARK,
            defaults={"min_retained_version": effective, "updated_at": timezone.now()})
        return PruneResult(horizon, effective, nodes_deleted, values_deleted)

    return run_serializable(prune, using=using, operation="prune_state")
