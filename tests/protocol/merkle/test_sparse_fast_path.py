"""The level-by-level ``apply`` writes exactly what the recursive one it replaced wrote.

``reference_apply`` is that recursive formulation, kept verbatim; here both run on the same
store for random update histories (deep clustered keys, updates to the same value, deletes of
absent keys, trees emptied and refilled) and must agree on the root, every written node and its
key, and every stale key. ``test_sparse_pinned.py`` pins the same from fixed known answers.
"""

from __future__ import annotations

import hashlib
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.merkle.errors import MerkleError
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore, NodeBatch, NodeKey
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from tests.protocol.merkle.reference_apply import reference_apply
from tests.protocol.merkle.test_sparse_tree import clustered_keys, key_of

pytestmark = pytest.mark.unit

Updates = dict[bytes, bytes | None]


def same_batch(ours: NodeBatch, reference: NodeBatch) -> None:
    assert ours.version == reference.version
    assert ours.root_hash == reference.root_hash
    assert len(ours.nodes) == len(dict(ours.nodes)), "a node key written twice"
    assert dict(ours.nodes) == dict(reference.nodes)
    assert ours.stale == reference.stale


def replay(history: list[Updates]) -> None:
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    for version, updates in enumerate(history):
        base = version - 1 if version else None
        root, batch = tree.apply(base, updates, version)
        expected_root, expected = reference_apply(store, base, updates, version)
        assert root == expected_root
        same_batch(batch, expected)
        store.write_batch(batch)


# Clustered keys make deep chains; a few uniform keys make shallow collapses.
key_sets = st.one_of(clustered_keys(max_size=32),
                     st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=6,
                              unique=True))


@settings(max_examples=400, deadline=None)
@given(keys=key_sets, data=st.data())
def test_random_histories_write_the_same_batches_as_the_recursive_apply(
    keys: list[bytes], data: st.DataObject
) -> None:
    values = st.sampled_from([b"", b"a", b"b", b"long value " * 3])
    history = data.draw(st.lists(
        st.dictionaries(st.sampled_from(keys), st.none() | values, max_size=12),
        min_size=1, max_size=8), label="history")
    replay(history)


def test_large_seeded_histories_write_the_same_batches_as_the_recursive_apply() -> None:
    seed = int(os.environ.get("MERKLE_SEED", random.randrange(1 << 32)))
    print(f"MERKLE_SEED={seed}")  # replay a failure with this environment variable
    rng = random.Random(seed)
    universe = [key_of(i) for i in range(3000)]
    history: list[Updates] = [dict.fromkeys(rng.sample(universe, 1500), b"v0")]
    for version in range(1, 8):
        updates: Updates = {}
        for key in rng.sample(universe, rng.choice((1, 10, 300, 1200))):
            roll = rng.random()
            updates[key] = None if roll < 0.4 else b"v0" if roll < 0.5 else b"v%d" % version
        history.append(updates)
    survivors = rng.sample(universe, 5)
    history.append({key: None for key in universe if key not in survivors})  # collapses
    history.append(dict.fromkeys(universe))  # everything deleted: the empty tree
    history.append({universe[0]: b"alone"})
    replay(history)


def test_a_node_missing_on_the_update_path_is_reported_the_same_way() -> None:
    store = InMemoryNodeStore()
    keys = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    _, batch = SparseMerkleTree(store).apply(None, dict.fromkeys(keys, b"x"), 0)
    store.write_batch(batch)
    interior = next(key for key, _ in batch.nodes if key.depth == 2)
    del store._nodes[interior]  # a corrupted store
    with pytest.raises(MerkleError) as ours:
        SparseMerkleTree(store).apply(0, dict.fromkeys(keys, b"y"), 1)
    with pytest.raises(MerkleError) as reference:
        reference_apply(store, 0, dict.fromkeys(keys, b"y"), 1)
    assert ours.value.reason is reference.value.reason
    assert str(ours.value) == str(reference.value)
    assert interior != NodeKey(0, 0, 0)
