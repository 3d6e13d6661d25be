"""The node store's hand-written node encoder is byte-identical to the canonical codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apps.state.nodestore import decode_node, encode_node
from cybermesh.protocol.codec import encode
from cybermesh.protocol.merkle.nodestore import (
    NULL_NODE,
    InternalNode,
    LeafNode,
    node_to_wire,
)

pytestmark = pytest.mark.unit

hashes = st.binary(min_size=32, max_size=32)
versions = st.one_of(st.integers(0, 30), st.integers(0, (1 << 64) - 1),
                     st.sampled_from([23, 24, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32]))
values = st.one_of(st.binary(max_size=300),
                   st.integers(0, 70000).map(lambda n: b"v" * n))


@given(hashes, versions, hashes, versions)
def test_internal_nodes_encode_like_the_codec(left: bytes, left_version: int, right: bytes,
                                              right_version: int) -> None:
    node = InternalNode(left, left_version, right, right_version)
    assert encode_node(node) == encode(node_to_wire(node))
    assert decode_node(encode_node(node)) == node


@given(hashes, values)
def test_leaf_nodes_encode_like_the_codec(key: bytes, value: bytes) -> None:
    node = LeafNode.of(key, value)
    assert encode_node(node) == encode(node_to_wire(node))
    assert decode_node(encode_node(node)) == node


def test_the_null_node_encodes_like_the_codec() -> None:
    assert encode_node(NULL_NODE) == encode(node_to_wire(NULL_NODE))
