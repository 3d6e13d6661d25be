"""RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing: the block ``tx_root``.

A block commits to its ordered transactions with the Merkle Tree Hash (MTH) of RFC 9162
section 2.1.1, so that any standard CT tooling (transparency-dev/merkle, trillian,
certificate-transparency-go) can check an inclusion proof a validator hands out:

* ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
* ``MTH({}) = SHA-256("")``; ``MTH(D[n])`` splits at the largest power of two below ``n``.

The recursive definition is computed bottom-up, one level at a time: pairing neighbours and
promoting an unpaired last node unchanged to the next level gives exactly the RFC's split at
the largest power of two (every node ``(level, i)`` then covers the leaves
``[i * 2**level, min((i + 1) * 2**level, n))``, whose MTH it is). That costs ``n`` leaf hashes
plus ``n - 1`` node hashes and no recursion.

The verifiers are the RFC's own algorithms (sections 2.1.3.2 and 2.1.4.2), step for step, so
this code and other CT verifiers accept and refuse the same proofs. They return ``False`` for
any malformed input and never raise.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_TREE_HASH",
    "HASH_SIZE",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "tree_hash",
    "tree_hash_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
EMPTY_TREE_HASH = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _next_level(level: list[bytes]) -> list[bytes]:
    """Hash neighbours pairwise; an unpaired last node is promoted unchanged (RFC split)."""
    sha256 = _sha256
    paired = [
        sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest()
        for i in range(0, len(level) - 1, 2)
    ]
    if len(level) % 2:
        paired.append(level[-1])
    return paired


def _levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    """All levels of the tree, leaves first; ``levels[l][i]`` is the MTH of its leaf range."""
    levels = [leaf_hashes]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def _leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    sha256 = _sha256
    return [sha256(_LEAF_PREFIX + leaf).digest() for leaf in leaves]


def tree_hash_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the MTH of a tree given its leaf hashes (for callers that cache leaf hashes)."""
    if not leaf_hashes:
        return EMPTY_TREE_HASH
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def tree_hash(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash (RFC 9162 section 2.1.1) of the ordered ``leaves``.

    The empty tree hashes to ``SHA-256("")``; a one-leaf tree to that leaf's hash.
    """
    return tree_hash_from_leaf_hashes(_leaf_hashes(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path ``PATH(index, D[n])`` of RFC 9162 section 2.1.3.1.

    The path lists sibling hashes from the leaf upwards; a level where the node is the
    promoted unpaired last node contributes nothing, which is what the RFC's recursive split
    produces. Raises ``ValueError`` if ``index`` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    path: list[bytes] = []
    level = _leaf_hashes(leaves)
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        position >>= 1
    return path


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check that ``leaf`` (the leaf *data*) is entry ``index`` of the tree with hash ``root``.

    This is the algorithm of RFC 9162 section 2.1.3.2, step by step; every proof element and
    the root must be 32 bytes.
    """
    if not 0 <= index < tree_size:
        return False
    if len(root) != HASH_SIZE or any(len(element) != HASH_SIZE for element in proof):
        return False
    fn, sn = index, tree_size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def consistency_proof(leaves: Sequence[bytes], first: int) -> list[bytes]:
    """Return ``PROOF(first, D[n])`` of RFC 9162 section 2.1.4.1 for ``0 < first <= n``.

    The proof shows that the tree of the first ``first`` leaves is a prefix of this tree. It is
    empty when ``first == n``. Raises ``ValueError`` for ``first`` outside ``1..n``.
    """
    size = len(leaves)
    if not 0 < first <= size:
        raise ValueError(f"first size {first} is not in 1..{size}")
    levels = _levels(_leaf_hashes(leaves))

    def subtree(start: int, end: int) -> bytes:
        # The ranges SUBPROOF visits are nodes of the full tree: aligned and either complete
        # or ending at the right edge, so their MTH is one entry of the level table.
        height = (end - start - 1).bit_length()
        return levels[height][start >> height]

    proof: list[bytes] = []
    # SUBPROOF(m, D[start:end], b), unrolled: each step appends the sibling subtree hash,
    # collected top-down, then reversed to the RFC's bottom-up order.
    m, start, end, complete = first, 0, size, True
    while m != end - start:
        split = 1 << ((end - start - 1).bit_length() - 1)
        if m <= split:
            proof.append(subtree(start + split, end))
            end = start + split
        else:
            proof.append(subtree(start, start + split))
            m -= split
            start += split
            complete = False
    if not complete:
        proof.append(subtree(start, end))
    proof.reverse()
    return proof


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_hash: bytes, second_hash: bytes
) -> bool:
    """Check that the tree of size ``first`` and hash ``first_hash`` is a prefix of the tree
    of size ``second`` and hash ``second_hash`` (RFC 9162 section 2.1.4.2).

    The RFC states the algorithm for ``0 < first < second``. The edge cases follow
    transparency-dev/merkle: ``first == second`` needs an empty proof and equal hashes, and
    the empty tree (``first == 0``) is a prefix of every tree with an empty proof.
    """
    if first < 0 or second < first:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof
    if (
        len(first_hash) != HASH_SIZE
        or len(second_hash) != HASH_SIZE
        or not proof
        or any(len(element) != HASH_SIZE for element in proof)
    ):
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0
