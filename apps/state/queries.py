"""Reads of the authenticated state at any retained version.

Two read paths that must agree: the materialized values (``state_kv``, one indexed lookup) and
the sparse Merkle tree (a walk from the version's root, which also yields the proof a client
checks with the root alone). Versions below the prune horizon, or not yet written, raise
:class:`StateError` instead of answering from a partial tree.
"""

from __future__ import annotations

from collections.abc import Iterator

from apps.state.models import StateValue, StateVersion
from apps.state.nodestore import DatabaseNodeStore
from apps.state.services import StateError, latest_version, min_retained_version
from cybermesh.protocol.merkle.sparse import Proof, SparseMerkleTree

_ITERATE_CHUNK = 2000


def _check_retained(version: int, using: str) -> None:
    horizon = min_retained_version(using=using)
    if version < horizon:
        raise StateError(f"state version {version} is pruned (horizon {horizon})")
    top = latest_version(using=using)
    if top is None or version > top:
        raise StateError(f"state version {version} is not written yet (latest {top})")


def root_at(version: int, *, using: str = "default") -> bytes:
    """The state root after the block at ``version``."""
    _check_retained(version, using)
    root = (StateVersion.objects.using(using).filter(version=version)
            .values_list("root_hash", flat=True).first())
    if root is None:
        raise StateError(f"state version {version} has no root")
    return bytes(root)


def read_value(key: bytes, version: int, *, using: str = "default") -> bytes | None:
    """The value of tree key ``key`` at ``version`` (``None``: absent), from ``state_kv``."""
    _check_retained(version, using)
    row = (StateValue.objects.using(using).filter(key_hash=key, version__lte=version)
           .order_by("-version").values_list("value", flat=True).first())
    return None if row is None else bytes(row)


def read_with_proof(key: bytes, version: int, *,
                    using: str = "default") -> tuple[bytes | None, Proof]:
    """The value of ``key`` at ``version`` and its inclusion or non-inclusion proof."""
    _check_retained(version, using)
    return SparseMerkleTree(DatabaseNodeStore(using=using)).get_with_proof(version, key)


def iter_state(version: int, *, using: str = "default") -> Iterator[tuple[bytes, bytes]]:
    """Every ``(key, value)`` present at ``version``, in key order, streamed."""
    _check_retained(version, using)
    rows = (StateValue.objects.using(using).filter(version__lte=version)
            .order_by("key_hash", "version").values_list("key_hash", "value")
            .iterator(chunk_size=_ITERATE_CHUNK))
    current_key: bytes | None = None
    current_value: bytes | None = None
    for raw_key, raw_value in rows:
        key = bytes(raw_key)
        if key != current_key:
            if current_key is not None and current_value is not None:
                yield current_key, current_value
            current_key = key
        current_value = None if raw_value is None else bytes(raw_value)
    if current_key is not None and current_value is not None:
        yield current_key, current_value
