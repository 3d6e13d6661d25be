"""RFC 9162 tree hashing, inclusion and consistency proofs.

Known-answer vectors are the classic CT test tree, pinned from transparency-dev/merkle
(testonly/constants.go and proof/verify_test.go), which Google's trillian and
certificate-transparency-go use too.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cybermesh.protocol.merkle.transparency import (
    EMPTY_TREE_HASH,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    tree_hash,
    tree_hash_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit

LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]

# Root hashes of the trees of the first n LEAVES, indexed by n.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

# Leaf-level hashes of the 8-leaf tree.
LEAF_HASHES = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    )
]


def h(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest)


# (leaf index, tree size, audit path) from transparency-dev/merkle proof/verify_test.go.
INCLUSION_VECTORS = [
    (0, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (0, 1, []),
]

# (first size, second size, proof) from the same file.
CONSISTENCY_VECTORS = [
    (1, 8, [h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (1, 1, []),
]


# --- the RFC's recursive definitions, written plainly, as the reference --------------------

def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(len(leaves))
    return hashlib.sha256(
        b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*reference_path(index, leaves[:k]), reference_mth(leaves[k:])]
    return [*reference_path(index - k, leaves[k:]), reference_mth(leaves[:k])]


def reference_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [reference_mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*reference_subproof(m, leaves[:k], complete), reference_mth(leaves[k:])]
    return [*reference_subproof(m - k, leaves[k:], False), reference_mth(leaves[:k])]


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- known answers -------------------------------------------------------------------------

def test_empty_tree_hash_is_sha256_of_empty_string() -> None:
    assert tree_hash([]) == EMPTY_TREE_HASH == ROOTS[0]


@pytest.mark.parametrize("size", range(len(ROOTS)))
def test_tree_hash_matches_published_ct_roots(size: int) -> None:
    assert tree_hash(LEAVES[:size]) == ROOTS[size]


def test_leaf_hashes_match_published_ct_vectors() -> None:
    assert [leaf_hash(leaf) for leaf in LEAVES] == LEAF_HASHES
    assert tree_hash_from_leaf_hashes(LEAF_HASHES) == ROOTS[8]


def test_node_hash_uses_interior_prefix() -> None:
    assert node_hash(LEAF_HASHES[0], LEAF_HASHES[1]) == ROOTS[2]


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS)
def test_inclusion_proof_matches_published_vectors(
    index: int, size: int, path: list[bytes]
) -> None:
    assert inclusion_proof(LEAVES[:size], index) == path
    assert verify_inclusion(LEAVES[index], index, size, path, ROOTS[size])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proof_matches_published_vectors(
    first: int, second: int, proof: list[bytes]
) -> None:
    assert consistency_proof(LEAVES[:second], first) == proof
    assert verify_consistency(first, second, proof, ROOTS[first], ROOTS[second])


# --- agreement with the recursive definition -------------------------------------------------

def test_iterative_tree_matches_recursive_definition_for_all_small_sizes() -> None:
    leaves = [i.to_bytes(2, "big") for i in range(70)]
    for size in range(71):
        assert tree_hash(leaves[:size]) == reference_mth(leaves[:size]), size


def test_inclusion_proofs_match_recursive_definition_for_all_small_trees() -> None:
    leaves = [bytes([i]) * (i % 5) for i in range(40)]
    for size in range(1, 41):
        for index in range(size):
            assert inclusion_proof(leaves[:size], index) == reference_path(
                index, leaves[:size]), (index, size)


def test_consistency_proofs_match_recursive_definition_for_all_small_trees() -> None:
    leaves = [bytes([i, 255 - i]) for i in range(40)]
    for size in range(1, 41):
        for first in range(1, size + 1):
            expected = reference_subproof(first, leaves[:size], True)
            assert consistency_proof(leaves[:size], first) == expected, (first, size)


# --- verifiers refuse what they must -------------------------------------------------------

def corrupted_inclusion_cases(
    index: int, size: int, path: list[bytes], root: bytes
) -> list[tuple[str, bytes, int, int, list[bytes], bytes]]:
    leaf = LEAVES[index]
    cases = [
        ("index - 1", leaf, index - 1, size, path, root),
        ("index + 1", leaf, index + 1, size, path, root),
        ("index ^ 2", leaf, index ^ 2, size, path, root),
        ("size * 2", leaf, index, size * 2, path, root),
        ("size / 2", leaf, index, size // 2, path, root),
        ("wrong leaf", b"WrongLeaf", index, size, path, root),
        ("empty root", leaf, index, size, path, EMPTY_TREE_HASH),
        ("trailing garbage", leaf, index, size, [*path, b""], root),
        ("trailing root", leaf, index, size, [*path, root], root),
        ("preceding garbage", leaf, index, size, [b"", *path], root),
        ("preceding root", leaf, index, size, [root, *path], root),
    ]
    for position in range(len(path)):
        wrong = list(path)
        wrong[position] = flip_bit(wrong[position], 3)
        cases.append((f"flipped path[{position}]", leaf, index, size, wrong, root))
    if path:
        cases.append(("removed element", leaf, index, size, path[:-1], root))
    if len(path) > 1:
        cases.append(("inserted element", leaf, index, size,
                      [path[0], b"\xab" * 32, *path[1:]], root))
    return cases


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION_VECTORS[:4])
def test_inclusion_verifier_refuses_every_corruption_of_a_published_proof(
    index: int, size: int, path: list[bytes]
) -> None:
    accepted = [
        name
        for name, leaf, probe_index, probe_size, probe_path, root in corrupted_inclusion_cases(
            index, size, path, ROOTS[size])
        if verify_inclusion(leaf, probe_index, probe_size, probe_path, root)
    ]
    assert accepted == []


def test_inclusion_verifier_refuses_index_outside_tree_and_short_root() -> None:
    root = tree_hash([b"data"])
    assert verify_inclusion(b"data", 0, 1, [], root)
    assert not verify_inclusion(b"data", 1, 1, [], root)
    assert not verify_inclusion(b"data", 0, 0, [], root)
    assert not verify_inclusion(b"data", -1, 1, [], root)
    assert not verify_inclusion(b"data", 0, 1, [], root[:31])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY_VECTORS[:4])
def test_consistency_verifier_refuses_every_corruption_of_a_published_proof(
    first: int, second: int, proof: list[bytes]
) -> None:
    root1, root2 = ROOTS[first], ROOTS[second]
    assert verify_consistency(first, second, proof, root1, root2)
    cases = [
        (first - 1, second, proof, root1, root2),
        (first + 1, second, proof, root1, root2),
        (first ^ 2, second, proof, root1, root2),
        (first, second * 2, proof, root1, root2),
        (first, second // 2, proof, root1, root2),
        (first, second, proof, b"WrongRoot", root2),
        (first, second, proof, root1, b"WrongRoot"),
        (first, second, proof, root2, root1),
        (first, second, [], root1, root2),
        (first, second, [*proof, b""], root1, root2),
        (first, second, [*proof, root1], root1, root2),
        (first, second, [*proof, root2], root1, root2),
        (first, second, [b"", *proof], root1, root2),
        (first, second, [root1, *proof], root1, root2),
        (first, second, [root2, *proof], root1, root2),
        (first, second, [proof[0], *proof], root1, root2),
        (first, second, proof[:-1], root1, root2),
    ]
    for position in range(len(proof)):
        wrong = list(proof)
        wrong[position] = flip_bit(wrong[position], 4)
        cases.append((first, second, wrong, root1, root2))
    accepted = [case[:2] for case in cases if verify_consistency(*case)]
    assert accepted == []


def test_consistency_edge_cases_follow_transparency_dev() -> None:
    root1, root2 = b"\x01" * 32, b"\x02" * 32
    assert verify_consistency(0, 0, [], root1, root1)
    assert verify_consistency(0, 1, [], root1, root2)
    assert verify_consistency(1, 1, [], root2, root2)
    assert not verify_consistency(0, 0, [], root1, root2)
    assert not verify_consistency(1, 1, [], root1, root2)
    assert not verify_consistency(1, 0, [], root1, root2)
    assert not verify_consistency(2, 1, [], root1, root2)
    assert not verify_consistency(1, 2, [], root1, root2)
    assert not verify_consistency(1, 1, [EMPTY_TREE_HASH], root1, root1)


def test_proof_generation_refuses_positions_outside_the_tree() -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(LEAVES, 8)
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof([], 0)
    with pytest.raises(ValueError, match="not in"):
        consistency_proof(LEAVES, 0)
    with pytest.raises(ValueError, match="not in"):
        consistency_proof(LEAVES, 9)


# --- properties ------------------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=80)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_inclusion_proof_verifies_and_every_mutation_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    root = tree_hash(leaves)
    path = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, size, path, root)

    if path:
        position = data.draw(st.integers(0, len(path) - 1), label="position")
        bit = data.draw(st.integers(0, 255), label="bit")
        mutated = list(path)
        mutated[position] = flip_bit(mutated[position], bit)
        assert not verify_inclusion(leaves[index], index, size, mutated, root)
    assert not verify_inclusion(leaves[index], index, size, path, flip_bit(root, 0))
    # Two different trees of the same size can share an index's proof only if a leaf moved:
    # every other index or size must fail for this leaf and path.
    other_index = data.draw(
        st.integers(0, size - 1).filter(lambda i: i != index or size == 1), label="other")
    if other_index != index and leaves[other_index] != leaves[index]:
        assert not verify_inclusion(leaves[index], other_index, size, path, root)
    other_size = data.draw(st.integers(1, 2 * size + 2).filter(lambda s: s != size),
                           label="other_size")
    if index < other_size and inclusion_proof_len(index, other_size) != len(path):
        assert not verify_inclusion(leaves[index], index, other_size, path, root)
    assert not verify_inclusion(leaves[index] + b"x", index, size, path, root)


def inclusion_proof_len(index: int, size: int) -> int:
    return len(inclusion_proof([b""] * size, index))


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_every_consistency_proof_verifies_and_a_flipped_bit_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    second = len(leaves)
    first = data.draw(st.integers(1, second), label="first")
    proof = consistency_proof(leaves, first)
    first_root, second_root = tree_hash(leaves[:first]), tree_hash(leaves)
    assert verify_consistency(first, second, proof, first_root, second_root)
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        bit = data.draw(st.integers(0, 255), label="bit")
        mutated = list(proof)
        mutated[position] = flip_bit(mutated[position], bit)
        assert not verify_consistency(first, second, mutated, first_root, second_root)
    if first < second:
        changed = [*leaves[: first - 1], leaves[first - 1] + b"!"]
        assert not verify_consistency(
            first, second, proof, tree_hash(changed), second_root)
