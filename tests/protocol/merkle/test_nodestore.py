"""Node keys and nodes have one canonical encoding; stores read, stage and prune by the rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cybermesh.protocol import codec
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    NULL_NODE,
    InMemoryNodeStore,
    InternalNode,
    LeafNode,
    NodeBatch,
    NodeKey,
    StagedNodeReader,
    node_from_wire,
    node_to_wire,
)
from cybermesh.protocol.merkle.sparse_hashing import EMPTY_HASH

pytestmark = pytest.mark.unit


@st.composite
def node_keys(draw: st.DrawFn) -> NodeKey:
    depth = draw(st.integers(0, 256))
    return NodeKey(draw(st.integers(0, (1 << 64) - 1)), depth,
                   draw(st.integers(0, (1 << depth) - 1)))


hashes = st.binary(min_size=32, max_size=32)
versions = st.integers(0, (1 << 64) - 1)
nodes = st.one_of(
    st.just(NULL_NODE),
    st.builds(LeafNode.of, hashes, st.binary(max_size=40)),
    st.builds(InternalNode, hashes, versions, hashes, versions),
)


@given(node_keys())
def test_node_keys_round_trip_through_their_encoding(node_key: NodeKey) -> None:
    encoded = node_key.encode()
    assert len(encoded) == 10 + (node_key.depth + 7) // 8
    assert NodeKey.decode(encoded) == node_key


@given(node_keys(), node_keys())
def test_node_key_encoding_orders_like_version_then_depth(a: NodeKey, b: NodeKey) -> None:
    if (a.version, a.depth) != (b.version, b.depth):
        assert (a.encode() < b.encode()) == ((a.version, a.depth) < (b.version, b.depth))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(9),
        bytes(8) + (1).to_bytes(2, "big"),  # depth 1 needs one path byte
        bytes(8) + (1).to_bytes(2, "big") + b"\x40",  # padding bit set
        bytes(8) + (257).to_bytes(2, "big") + bytes(33),  # deeper than a key
        bytes(8) + (0).to_bytes(2, "big") + b"\x00",  # trailing byte
    ],
)
def test_malformed_node_keys_are_refused(data: bytes) -> None:
    with pytest.raises(MerkleError) as refused:
        NodeKey.decode(data)
    assert refused.value.reason is MerkleErrorReason.MALFORMED_NODE


@given(nodes)
def test_nodes_round_trip_through_canonical_cbor(node: object) -> None:
    wire = node_to_wire(node)  # type: ignore[arg-type]
    assert node_from_wire(codec.decode(codec.encode(wire))) == node


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        ["1"],
        [0, b"extra"],
        [1, bytes(32)],
        [1, bytes(31), b"v"],
        [1, bytes(32), "v"],
        [2, bytes(32), 0, bytes(32)],
        [2, bytes(32), -1, bytes(32), 0],
        [2, bytes(32), 1 << 64, bytes(32), 0],
        [2, bytes(31), 0, bytes(32), 0],
        [2, bytes(32), True, bytes(32), 0],
        [3],
    ],
)
def test_malformed_stored_nodes_are_refused(wire: object) -> None:
    with pytest.raises(MerkleError) as refused:
        node_from_wire(wire)
    assert refused.value.reason is MerkleErrorReason.MALFORMED_NODE


def batch(version: int, nodes_: dict[NodeKey, object], stale: tuple[NodeKey, ...]) -> NodeBatch:
    root = nodes_.get(NodeKey(version, 0, 0), NULL_NODE)
    return NodeBatch(version, root.hash, tuple(nodes_.items()), stale)  # type: ignore[arg-type, attr-defined]


def test_prune_deletes_nodes_stale_since_the_horizon_and_no_later() -> None:
    store = InMemoryNodeStore()
    a, b, c = NodeKey(0, 0, 0), NodeKey(1, 0, 0), NodeKey(2, 0, 0)
    store.write_batch(batch(0, {a: LeafNode.of(bytes(32), b"0")}, ()))
    store.write_batch(batch(1, {b: LeafNode.of(bytes(32), b"1")}, (a,)))
    store.write_batch(batch(2, {c: LeafNode.of(bytes(32), b"2")}, (b,)))
    assert store.prune(0) == 0
    assert store.prune(1) == 1 and store.get_node(a) is None and store.get_node(b) is not None
    assert store.prune(1) == 0
    assert store.prune(5) == 1 and set(store.node_keys()) == {c}
    assert store.stale_count() == 0


def test_staged_reader_prefers_staged_nodes_and_falls_back_to_the_store() -> None:
    store = InMemoryNodeStore()
    stored, staged_key = NodeKey(0, 0, 0), NodeKey(1, 0, 0)
    store.write_batch(batch(0, {stored: LeafNode.of(bytes(32), b"s")}, ()))
    node = InternalNode(EMPTY_HASH, 0, EMPTY_HASH, 0)
    reader = StagedNodeReader(store, [batch(1, {staged_key: node}, (stored,))])
    assert reader.get_node(staged_key) == node
    assert reader.get_node(stored) == LeafNode.of(bytes(32), b"s")
    assert reader.get_node(NodeKey(9, 0, 0)) is None
    assert dict(reader.get_nodes([stored, staged_key, NodeKey(9, 0, 0)])) == {
        stored: LeafNode.of(bytes(32), b"s"), staged_key: node}
    assert store.get_node(staged_key) is None
