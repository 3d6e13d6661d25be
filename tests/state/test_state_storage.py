"""The authenticated state on PostgreSQL: reads and proofs per height, pruning, snapshots."""

from __future__ import annotations

import random

import pytest
from django.db import transaction

from apps.ledger.records import StateUpdate
from apps.state.models import StaleNode, StateNode, StateSnapshot, StateValue, StateVersion
from apps.state.nodestore import DatabaseNodeStore, decode_node, encode_node
from apps.state.queries import iter_state, read_value, read_with_proof, root_at
from apps.state.services import (
    StateError,
    initialize_state,
    prune_state,
    write_state_version,
)
from cybermesh.db import run_serializable
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore, LeafNode
from cybermesh.protocol.merkle.sparse import SparseMerkleTree, verify_proof

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def key(name: str) -> bytes:
    return sha256(name.encode())


def _history(seed: int, versions: int, keys: int) -> list[dict[bytes, bytes | None]]:
    rng = random.Random(seed)
    names = [key(f"k{index}") for index in range(keys)]
    history = []
    for version in range(versions):
        changes: dict[bytes, bytes | None] = {}
        for _ in range(rng.randrange(1, 6)):
            name = rng.choice(names)
            changes[name] = None if rng.random() < 0.25 else f"v{version}.{rng.random()}".encode()
        history.append(changes)
    return history


def _write(history: list[dict[bytes, bytes | None]], snapshot_interval: int = 4) -> None:
    for version, changes in enumerate(history):
        updates = [StateUpdate(k, v) for k, v in changes.items()]
        run_serializable(lambda version=version, updates=updates: write_state_version(
            version=version, base_version=version - 1 if version else None, updates=updates,
            snapshot_interval=snapshot_interval))


def _expected(history: list[dict[bytes, bytes | None]]) -> list[dict[bytes, bytes]]:
    states, current = [], {}
    for changes in history:
        for name, value in changes.items():
            if value is None:
                current.pop(name, None)
            else:
                current[name] = value
        states.append(dict(current))
    return states


def test_every_version_reads_and_proves_what_was_written_and_matches_memory() -> None:
    seed = 20260101
    print(f"seed={seed}")
    history = _history(seed, versions=12, keys=10)
    _write(history)
    store = InMemoryNodeStore()  # the in-memory twin of the database tree
    memory = SparseMerkleTree(store)
    for version, changes in enumerate(history):
        root, batch = memory.apply(version - 1 if version else None, changes, version)
        store.write_batch(batch)
        assert root_at(version) == root
    for version, state in enumerate(_expected(history)):
        assert dict(iter_state(version)) == state
        root = root_at(version)
        for index in range(10):
            name = key(f"k{index}")
            value, proof = read_with_proof(name, version)
            assert value == state.get(name) == read_value(name, version)
            assert verify_proof(root, name, value, proof)


def test_pruning_keeps_the_horizon_readable_and_forgets_what_is_below() -> None:
    history = _history(7, versions=13, keys=8)
    _write(history, snapshot_interval=4)
    expected = _expected(history)
    nodes_before, values_before = StateNode.objects.count(), StateValue.objects.count()

    result = prune_state(horizon=10)  # lowered to the snapshot at 8

    assert result.min_retained_version == 8
    assert result.nodes_deleted > 0 and StateNode.objects.count() < nodes_before
    assert StateValue.objects.count() < values_before
    assert not StaleNode.objects.filter(stale_since__lte=8).exists()
    for version in range(8, 13):
        assert dict(iter_state(version)) == expected[version]
        root = root_at(version)
        for index in range(8):
            value, proof = read_with_proof(key(f"k{index}"), version)
            assert verify_proof(root, key(f"k{index}"), value, proof)
    with pytest.raises(StateError, match="pruned"):
        read_value(key("k0"), 7)
    assert set(StateSnapshot.objects.values_list("version_height", flat=True)) == {0, 4, 8, 12}
    # The horizon never moves backwards.
    assert prune_state(horizon=4).min_retained_version == 8


def test_a_version_cannot_be_written_twice_or_on_an_unknown_base() -> None:
    initialize_state(version=0, updates=[StateUpdate(key("a"), b"1")])
    with pytest.raises(StateError, match="already written"):
        run_serializable(lambda: write_state_version(version=0, base_version=None, updates=[]))
    with pytest.raises(StateError, match="unknown or pruned"):
        run_serializable(lambda: write_state_version(version=5, base_version=4, updates=[]))
    with pytest.raises(StateError, match="already exists"):
        initialize_state(version=3, updates=[])


def test_the_node_store_refuses_a_second_root_for_a_version() -> None:
    initialize_state(version=0, updates=[StateUpdate(key("a"), b"1")])
    _, other = SparseMerkleTree(InMemoryNodeStore()).apply(None, {key("a"): b"2"}, 0)
    with pytest.raises(MerkleError) as raised, transaction.atomic():
        DatabaseNodeStore().write_batch(other)
    assert raised.value.reason is MerkleErrorReason.CONFLICTING_BATCH


def test_state_writes_outside_a_transaction_are_refused() -> None:
    with pytest.raises(transaction.TransactionManagementError):
        write_state_version(version=0, base_version=None, updates=[])
    _, batch = SparseMerkleTree(InMemoryNodeStore()).apply(None, {key("a"): b"1"}, 0)
    with pytest.raises(transaction.TransactionManagementError):
        DatabaseNodeStore().write_batch(batch)
    assert not StateNode.objects.exists() and not StateVersion.objects.exists()


def test_a_tampered_leaf_row_no_longer_proves_against_the_root() -> None:
    initialize_state(version=0, updates=[StateUpdate(key(f"k{i}"), b"x") for i in range(4)])
    root = root_at(0)
    leaves = [row for row in StateNode.objects.all()
              if isinstance(decode_node(row.data), LeafNode)]
    victim = decode_node(leaves[0].data)
    assert isinstance(victim, LeafNode)
    StateNode.objects.filter(node_key=leaves[0].node_key).update(
        data=encode_node(LeafNode.of(victim.key, b"forged")))

    value, proof = read_with_proof(victim.key, 0)

    assert value == b"forged"
    assert not verify_proof(root, victim.key, value, proof)
