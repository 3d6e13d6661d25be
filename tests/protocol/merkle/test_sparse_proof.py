"""Sparse Merkle proofs: inclusion and non-inclusion verify; every check can refuse."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol import codec
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import InMemoryNodeStore
from cybermesh.protocol.merkle.sparse import Proof, ProofLeaf, SparseMerkleTree, verify_proof
from cybermesh.protocol.merkle.sparse_hashing import (
    EMPTY_HASH,
    internal_hash,
    leaf_hash,
    value_hash,
)

pytestmark = pytest.mark.unit


def key_of(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


State = tuple[SparseMerkleTree, list[bytes], bytes, bytes]


@pytest.fixture(scope="module")
def state() -> State:
    """Version 0 holds keys 0..199 (value = the key's first byte); version 1 changes key 0."""
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    keys = [key_of(i) for i in range(400)]
    root0, batch = tree.apply(None, {k: k[:1] for k in keys[:200]}, 0)
    store.write_batch(batch)
    root1, batch = tree.apply(0, {keys[0]: b"changed"}, 1)
    store.write_batch(batch)
    return tree, keys, root0, root1


def absent_with_kind(tree: SparseMerkleTree, keys: list[bytes], empty: bool) -> bytes:
    for key in keys[200:]:
        if (tree.prove(0, key).leaf is None) == empty:
            return key
    raise AssertionError("no absent key with this proof kind")


def test_inclusion_proofs_verify_for_every_present_key(state: State) -> None:
    tree, keys, root0, _ = state
    for key in keys[:200]:
        value, proof = tree.get_with_proof(0, key)
        assert value == key[:1]
        assert proof.leaf == ProofLeaf(key, value_hash(key[:1]))
        assert verify_proof(root0, key, value, proof)


def test_non_inclusion_proofs_of_both_kinds_verify(state: State) -> None:
    tree, keys, root0, _ = state
    kinds = set()
    for key in keys[200:]:
        value, proof = tree.get_with_proof(0, key)
        assert value is None
        assert verify_proof(root0, key, None, proof)
        kinds.add("empty" if proof.leaf is None else "other leaf")
    assert kinds == {"empty", "other leaf"}


def test_tampered_value_fails(state: State) -> None:
    tree, keys, root0, _ = state
    proof = tree.prove(0, keys[5])
    assert verify_proof(root0, keys[5], keys[5][:1], proof)
    assert not verify_proof(root0, keys[5], keys[5][:1] + b"x", proof)
    assert not verify_proof(root0, keys[5], b"", proof)


def test_proof_for_another_key_fails(state: State) -> None:
    tree, keys, root0, _ = state
    proof = tree.prove(0, keys[5])
    assert not verify_proof(root0, keys[6], keys[5][:1], proof)
    assert not verify_proof(root0, keys[6], None, proof)
    empty_absent = absent_with_kind(tree, keys, empty=True)
    assert not verify_proof(root0, keys[5], None, tree.prove(0, empty_absent))


def test_proof_from_another_root_fails(state: State) -> None:
    tree, keys, root0, root1 = state
    old = tree.prove(0, keys[0])
    new = tree.prove(1, keys[0])
    assert verify_proof(root1, keys[0], b"changed", new)
    assert not verify_proof(root1, keys[0], keys[0][:1], old)
    assert not verify_proof(root0, keys[0], b"changed", new)
    # An unchanged key's proof also changes with the root: its path shares the root.
    assert not verify_proof(root1, keys[1], keys[1][:1], tree.prove(0, keys[1]))


def test_truncated_or_extended_sibling_lists_fail(state: State) -> None:
    tree, keys, root0, _ = state
    cases = [(keys[9], keys[9][:1]), (absent_with_kind(tree, keys, empty=True), None),
             (absent_with_kind(tree, keys, empty=False), None)]
    for key, value in cases:
        proof = tree.prove(0, key)
        assert verify_proof(root0, key, value, proof)
        variants = [
            proof.siblings[:-1],
            proof.siblings[1:],
            (*proof.siblings, EMPTY_HASH),
            (EMPTY_HASH, *proof.siblings),
            (*proof.siblings, proof.siblings[-1]),
        ]
        for siblings in variants:
            assert not verify_proof(root0, key, value, Proof(siblings, proof.leaf))


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, 399), bit=st.integers(0, 255), data=st.data())
def test_any_flipped_bit_in_a_proof_fails(
    state: State, index: int, bit: int, data: st.DataObject
) -> None:
    tree, keys, root0, _ = state
    key = keys[index]
    value, proof = tree.get_with_proof(0, key)
    position = data.draw(st.integers(0, len(proof.siblings)), label="position")
    if position < len(proof.siblings):
        siblings = list(proof.siblings)
        siblings[position] = flip_bit(siblings[position], bit)
        assert not verify_proof(root0, key, value, Proof(tuple(siblings), proof.leaf))
    elif proof.leaf is not None:
        tampered = ProofLeaf(proof.leaf.key, flip_bit(proof.leaf.value_hash, bit))
        assert not verify_proof(root0, key, value, Proof(proof.siblings, tampered))
    assert not verify_proof(flip_bit(root0, bit), key, value, proof)
    if value is not None:
        assert not verify_proof(root0, flip_bit(key, bit), value, proof)


def test_inclusion_proof_cannot_claim_the_key_is_absent(state: State) -> None:
    tree, keys, root0, _ = state
    # Hash-wise the walk is identical, so only the "leaf is another key" check refuses it.
    assert not verify_proof(root0, keys[3], None, tree.prove(0, keys[3]))


def test_non_inclusion_proof_cannot_claim_a_value(state: State) -> None:
    tree, keys, root0, _ = state
    for empty in (True, False):
        key = absent_with_kind(tree, keys, empty=empty)
        assert not verify_proof(root0, key, b"", tree.prove(0, key))


def test_a_shortcut_leaf_off_the_keys_path_is_refused() -> None:
    # A hand-made root where a leaf whose key starts with bit 1 sits in the left subtree. The
    # hashes of a non-inclusion proof for a key starting with bit 0 line up; only the check
    # that the leaf shares the key's path prefix refuses it.
    stray = ProofLeaf(b"\x80" + bytes(31), value_hash(b"v"))
    sibling = b"\x42" * 32
    root = internal_hash(leaf_hash(stray.key, stray.value_hash), sibling)
    absent = b"\x01" + bytes(31)
    assert not verify_proof(root, absent, None, Proof((sibling,), stray))
    on_path = ProofLeaf(b"\x00" + b"\xff" * 31, value_hash(b"v"))
    root = internal_hash(leaf_hash(on_path.key, on_path.value_hash), sibling)
    assert verify_proof(root, absent, None, Proof((sibling,), on_path))


def test_malformed_sizes_are_refused_without_raising(state: State) -> None:
    tree, keys, root0, _ = state
    proof = tree.prove(0, keys[2])
    value = keys[2][:1]
    assert verify_proof(root0, keys[2], value, proof)
    assert not verify_proof(root0[:31], keys[2], value, proof)
    assert not verify_proof(root0, keys[2][:31], value, proof)
    short = Proof((proof.siblings[0][:31], *proof.siblings[1:]), proof.leaf)
    assert not verify_proof(root0, keys[2], value, short)
    assert not verify_proof(root0, keys[2], value, Proof((EMPTY_HASH,) * 257, proof.leaf))
    absent = absent_with_kind(tree, keys, empty=False)
    other = tree.prove(0, absent)
    assert other.leaf is not None
    bad_leaf = ProofLeaf(other.leaf.key[:31], other.leaf.value_hash)
    assert not verify_proof(root0, absent, None, Proof(other.siblings, bad_leaf))


def test_empty_tree_proves_absence_with_no_siblings() -> None:
    store = InMemoryNodeStore()
    tree = SparseMerkleTree(store)
    root, batch = tree.apply(None, {}, 0)
    store.write_batch(batch)
    proof = tree.prove(0, key_of(1))
    assert proof == Proof((), None)
    assert verify_proof(root, key_of(1), None, proof)
    assert not verify_proof(root, key_of(1), b"", proof)


# --- wire form ---------------------------------------------------------------------------------

def test_proofs_round_trip_through_canonical_cbor(state: State) -> None:
    tree, keys, root0, _ = state
    for key in (keys[0], absent_with_kind(tree, keys, empty=True),
                absent_with_kind(tree, keys, empty=False)):
        value, proof = tree.get_with_proof(0, key)
        encoded = codec.encode(proof.to_wire())
        decoded = Proof.from_wire(codec.decode(encoded))
        assert decoded == proof
        assert verify_proof(root0, key, value, decoded)
        assert codec.encode(decoded.to_wire()) == encoded


@pytest.mark.parametrize(
    "wire",
    [
        None,
        [],
        {"siblings": []},
        {"siblings": [], "leaf": None, "extra": 1},
        {"siblings": "abc", "leaf": None},
        {"siblings": [b"\x00" * 31], "leaf": None},
        {"siblings": ["x" * 32], "leaf": None},
        {"siblings": [b"\x00" * 32] * 257, "leaf": None},
        {"siblings": [], "leaf": [b"\x00" * 32]},
        {"siblings": [], "leaf": [b"\x00" * 31, b"\x00" * 32]},
        {"siblings": [], "leaf": [b"\x00" * 32, b"\x00" * 33]},
        {"siblings": [], "leaf": {"key": b"\x00" * 32}},
    ],
)
def test_malformed_wire_proofs_are_refused(wire: object) -> None:
    with pytest.raises(MerkleError) as refused:
        Proof.from_wire(wire)
    assert refused.value.reason is MerkleErrorReason.MALFORMED_PROOF
