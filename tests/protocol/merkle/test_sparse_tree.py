"""The versioned sparse Merkle state tree: roots, versions, deletes, pruning, staging."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    InMemoryNodeStore,
    InternalNode,
    LeafNode,
    Node,
    NodeKey,
    NullNode,
    StagedNodeReader,
)
from cybermesh.protocol.merkle.sparse import SparseMerkleTree, verify_proof

pytestmark = pytest.mark.unit

# --- an independent reference: the canonical tree, hashed straight from its definition ------

EMPTY = hashlib.sha256(b"\x12").digest()


def ref_leaf(key: bytes, value: bytes) -> bytes:
    return hashlib.sha256(b"\x10" + key + hashlib.sha256(b"\x13" + value).digest()).digest()


def reference_root(items: dict[bytes, bytes], depth: int = 0) -> bytes:
    if not items:
        return EMPTY
    if len(items) == 1:
        ((key, value),) = items.items()
        return ref_leaf(key, value)
    left = {k: v for k, v in items.items() if not (int.from_bytes(k, "big") >> (255 - depth)) & 1}
    right = {k: v for k, v in items.items() if k not in left}
    return hashlib.sha256(
        b"\x11" + reference_root(left, depth + 1) + reference_root(right, depth + 1)).digest()


def key_of(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


# Keys drawn around one base key, sharing a random-length prefix with it, so trees get deep
# (down to two keys differing only in their last bit, at depth 256).
@st.composite
def clustered_keys(draw: st.DrawFn, max_size: int = 24) -> list[bytes]:
    base = int.from_bytes(draw(st.binary(min_size=32, max_size=32)), "big")
    keys = set()
    for shared, tail in draw(st.lists(
            st.tuples(st.integers(0, 256), st.binary(min_size=32, max_size=32)),
            min_size=1, max_size=max_size)):
        low_mask = (1 << (256 - shared)) - 1
        keys.add(((base & ~low_mask) | (int.from_bytes(tail, "big") & low_mask))
                 .to_bytes(32, "big"))
    return sorted(keys)


values = st.binary(max_size=6)


def apply_and_store(
    store: InMemoryNodeStore, base: int | None, updates: Mapping[bytes, bytes | None],
    version: int,
) -> bytes:
    root, batch = SparseMerkleTree(store).apply(base, updates, version)
    store.write_batch(batch)
    return root


def reachable(store: InMemoryNodeStore, version: int) -> set[NodeKey]:
    """Every node key reachable from the root of ``version``."""
    seen: set[NodeKey] = set()
    stack = [NodeKey(version, 0, 0)]
    while stack:
        key = stack.pop()
        seen.add(key)
        node = store.get_node(key)
        assert node is not None, f"dangling reference to {key}"
        if isinstance(node, InternalNode):
            if node.left_hash != EMPTY:
                stack.append(key.child(node.left_version, 0))
            if node.right_hash != EMPTY:
                stack.append(key.child(node.right_version, 1))
    return seen


def test_empty_tree_root_is_the_empty_subtree_hash() -> None:
    store = InMemoryNodeStore()
    root = apply_and_store(store, None, {}, 0)
    assert root == EMPTY == SparseMerkleTree(store).root_hash(0)
    assert isinstance(store.get_node(NodeKey(0, 0, 0)), NullNode)


def test_one_key_tree_is_a_single_leaf_at_the_root() -> None:
    store = InMemoryNodeStore()
    root = apply_and_store(store, None, {key_of(1): b"v"}, 0)
    assert root == ref_leaf(key_of(1), b"v")
    assert store.get_node(NodeKey(0, 0, 0)) == LeafNode.of(key_of(1), b"v")
    assert len(store) == 1


def test_keys_differing_only_in_the_last_bit_sit_at_depth_256() -> None:
    store = InMemoryNodeStore()
    low, high = bytes(32), bytes(31) + b"\x01"
    root = apply_and_store(store, None, {low: b"a", high: b"b"}, 0)
    assert root == reference_root({low: b"a", high: b"b"})
    assert store.get_node(NodeKey(0, 256, 1)) == LeafNode.of(high, b"b")
    tree = SparseMerkleTree(store)
    for key, value in ((low, b"a"), (high, b"b")):
        found, proof = tree.get_with_proof(0, key)
        assert found == value and len(proof.siblings) == 256
        assert verify_proof(root, key, value, proof)


@settings(max_examples=200, deadline=None)
@given(keys=clustered_keys(), data=st.data())
def test_root_matches_reference_definition_and_ignores_insertion_order(
    keys: list[bytes], data: st.DataObject
) -> None:
    items = {key: data.draw(values, label="value") for key in keys}
    expected = reference_root(items)
    assert SparseMerkleTree(InMemoryNodeStore()).apply(None, items, 0)[0] == expected

    # The same set, inserted over several versions in another order, gives the same root.
    order = data.draw(st.permutations(keys), label="order")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(keys)), max_size=4), label="cuts"))
    store = InMemoryNodeStore()
    root = apply_and_store(store, None, {}, 0)
    bounds = zip([0, *cuts], [*cuts, len(keys)], strict=True)
    for version, (start, end) in enumerate(bounds, start=1):
        root = apply_and_store(store, version - 1, {k: items[k] for k in order[start:end]},
                               version)
    assert root == expected


@settings(max_examples=150, deadline=None)
@given(keys=clustered_keys(), data=st.data())
def test_every_version_matches_the_model_and_proves_every_key(
    keys: list[bytes], data: st.DataObject
) -> None:
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    model: dict[bytes, bytes] = {}
    history: list[dict[bytes, bytes]] = []
    batches = data.draw(st.lists(
        st.dictionaries(st.sampled_from(keys), st.none() | values, max_size=8),
        min_size=1, max_size=6), label="batches")
    for version, updates in enumerate(batches):
        root = apply_and_store(store, version - 1 if version else None, updates, version)
        for key, value in updates.items():
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        assert root == reference_root(model)
        history.append(dict(model))
    for version, snapshot in enumerate(history):  # every old version stays readable
        root = tree.root_hash(version)
        assert root == reference_root(snapshot)
        for key in keys:
            value, proof = tree.get_with_proof(version, key)
            assert value == snapshot.get(key)
            assert verify_proof(root, key, value, proof)


@settings(max_examples=100, deadline=None)
@given(keys=clustered_keys(), data=st.data())
def test_deleting_what_a_batch_inserted_restores_the_exact_previous_root(
    keys: list[bytes], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(keys)), label="split")
    base = dict.fromkeys(keys[:split], b"base")
    store = InMemoryNodeStore()
    before = apply_and_store(store, None, base, 0)
    added = dict.fromkeys(keys[split:], b"new")
    after = apply_and_store(store, 0, added, 1)
    assert (after != before) == bool(added)
    assert apply_and_store(store, 1, dict.fromkeys(added), 2) == before


def test_unchanged_version_writes_only_a_root_copy_and_stales_the_old_root() -> None:
    store = InMemoryNodeStore()
    keys = [key_of(i) for i in range(50)]
    root = apply_and_store(store, None, dict.fromkeys(keys, b"x"), 0)
    tree = SparseMerkleTree(store)
    same_root, batch = tree.apply(0, {keys[0]: b"x", key_of(999): None}, 1)
    assert same_root == root
    assert [key for key, _ in batch.nodes] == [NodeKey(1, 0, 0)]
    assert batch.stale == (NodeKey(0, 0, 0),)


def test_an_update_writes_one_path_and_stales_the_nodes_it_replaced() -> None:
    store = InMemoryNodeStore()
    keys = [key_of(i) for i in range(256)]
    apply_and_store(store, None, dict.fromkeys(keys, b"x"), 0)
    _, batch = SparseMerkleTree(store).apply(0, {keys[7]: b"y"}, 1)
    depth = max(key.depth for key, _ in batch.nodes)
    assert len(batch.nodes) == depth + 1  # one node per level, root to the leaf
    assert len(batch.stale) == depth + 1
    assert all(key.version == 0 for key in batch.stale)


def test_removing_a_key_moves_its_lone_sibling_leaf_up_to_the_shortcut_position() -> None:
    store = InMemoryNodeStore()
    near = bytes(31) + b"\x01"  # shares 255 bits with the zero key
    far = b"\x80" + bytes(31)
    apply_and_store(store, None, {bytes(32): b"a", near: b"b", far: b"c"}, 0)
    root = apply_and_store(store, 0, {bytes(32): None}, 1)
    assert root == reference_root({near: b"b", far: b"c"})
    assert store.get_node(NodeKey(1, 1, 0)) == LeafNode.of(near, b"b")
    value, proof = SparseMerkleTree(store).get_with_proof(1, near)
    assert value == b"b" and len(proof.siblings) == 1


@settings(max_examples=60, deadline=None)
@given(keys=clustered_keys(), data=st.data())
def test_pruning_keeps_exactly_the_nodes_of_retained_versions(
    keys: list[bytes], data: st.DataObject
) -> None:
    store = InMemoryNodeStore()
    batches = data.draw(st.lists(
        st.dictionaries(st.sampled_from(keys), st.none() | values, max_size=6),
        min_size=1, max_size=6), label="batches")
    roots = [apply_and_store(store, v - 1 if v else None, u, v) for v, u in enumerate(batches)]
    horizon = data.draw(st.integers(0, len(batches) - 1), label="horizon")
    store.prune(horizon)
    tree = SparseMerkleTree(store)
    retained = range(horizon, len(batches))
    expected_nodes = set().union(*(reachable(store, v) for v in retained))
    assert set(store.node_keys()) == expected_nodes
    for version in retained:
        for key in keys:
            value, proof = tree.get_with_proof(version, key)
            assert verify_proof(roots[version], key, value, proof)
    for version in range(horizon):
        with pytest.raises(MerkleError) as refused:
            tree.root_hash(version)
        assert refused.value.reason is MerkleErrorReason.VERSION_NOT_FOUND


def test_staged_batches_let_a_proposal_build_on_an_uncommitted_parent() -> None:
    store = InMemoryNodeStore()
    apply_and_store(store, None, {key_of(i): b"0" for i in range(20)}, 0)
    staged = StagedNodeReader(store)
    root1, batch1 = SparseMerkleTree(staged).apply(0, {key_of(1): b"1"}, 1)
    staged.stage(batch1)
    root2, batch2 = SparseMerkleTree(staged).apply(1, {key_of(2): b"2", key_of(3): None}, 2)
    staged.stage(batch2)
    assert SparseMerkleTree(staged).get(2, key_of(2)) == b"2"
    with pytest.raises(MerkleError):
        SparseMerkleTree(store).root_hash(1)  # nothing reached the store yet
    store.write_batch(batch1)
    store.write_batch(batch2)
    assert SparseMerkleTree(store).root_hash(2) == root2 != root1
    model = {key_of(i): b"0" for i in range(20)} | {key_of(1): b"1", key_of(2): b"2"}
    del model[key_of(3)]
    assert root2 == reference_root(model)


def test_writing_another_root_for_a_stored_version_is_refused() -> None:
    store = InMemoryNodeStore()
    apply_and_store(store, None, {key_of(1): b"a"}, 0)
    tree = SparseMerkleTree(store)
    _, batch = tree.apply(0, {key_of(2): b"b"}, 1)
    _, fork = tree.apply(0, {key_of(2): b"c"}, 1)
    store.write_batch(batch)
    store.write_batch(batch)  # the same batch again is a no-op
    with pytest.raises(MerkleError) as refused:
        store.write_batch(fork)
    assert refused.value.reason is MerkleErrorReason.CONFLICTING_BATCH


@pytest.mark.parametrize(
    ("base", "updates", "new", "reason"),
    [
        (None, {b"short": b"v"}, 0, MerkleErrorReason.INVALID_KEY),
        (None, {key_of(1): "text"}, 0, MerkleErrorReason.INVALID_VALUE),
        (0, {}, 0, MerkleErrorReason.INVALID_VERSION),
        (1, {}, 0, MerkleErrorReason.INVALID_VERSION),
        (None, {}, -1, MerkleErrorReason.INVALID_VERSION),
        (None, {}, 1 << 64, MerkleErrorReason.INVALID_VERSION),
        (5, {}, 6, MerkleErrorReason.VERSION_NOT_FOUND),
    ],
)
def test_apply_refuses_bad_keys_values_and_versions(
    base: int | None, updates: dict[bytes, object], new: int, reason: MerkleErrorReason
) -> None:
    store = InMemoryNodeStore()
    apply_and_store(store, None, {}, 0)
    with pytest.raises(MerkleError) as refused:
        SparseMerkleTree(store).apply(base, updates, new)  # type: ignore[arg-type]
    assert refused.value.reason is reason


class ForgetfulReader:
    """A reader that has lost one node (a corrupted or over-pruned store)."""

    def __init__(self, store: InMemoryNodeStore, lost: NodeKey) -> None:
        self.store, self.lost = store, lost

    def get_node(self, node_key: NodeKey) -> Node | None:
        return None if node_key == self.lost else self.store.get_node(node_key)

    def get_nodes(self, node_keys: Collection[NodeKey]) -> Mapping[NodeKey, Node]:
        return {k: n for k, n in self.store.get_nodes(node_keys).items() if k != self.lost}


def test_a_node_missing_from_the_store_is_reported_not_guessed() -> None:
    store = InMemoryNodeStore()
    keys = [key_of(i) for i in range(64)]
    apply_and_store(store, None, dict.fromkeys(keys, b"x"), 0)
    leaf_key = next(k for k in store.node_keys()
                    if getattr(store.get_node(k), "key", None) == keys[0])
    tree = SparseMerkleTree(ForgetfulReader(store, leaf_key))
    for read in (lambda: tree.get(0, keys[0]),
                 lambda: tree.apply(0, {keys[0]: b"y"}, 1)):
        with pytest.raises(MerkleError) as refused:
            read()
        assert refused.value.reason is MerkleErrorReason.MISSING_NODE


def test_reads_refuse_keys_that_are_not_32_bytes() -> None:
    store = InMemoryNodeStore()
    apply_and_store(store, None, {}, 0)
    with pytest.raises(MerkleError) as refused:
        SparseMerkleTree(store).get(0, b"\x00" * 31)
    assert refused.value.reason is MerkleErrorReason.INVALID_KEY
