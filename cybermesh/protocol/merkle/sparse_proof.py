"""Sparse Merkle proofs: what a client needs, with only a state root and a key, to check a
value (inclusion) or its absence (non-inclusion).

A proof is the list of sibling hashes from the root down to where the walk for ``key`` ends,
plus what it ends on:

* the leaf of ``key`` itself: inclusion; the verifier hashes the value it was given;
* an empty subtree (``leaf`` is ``None``): ``key`` is absent;
* the leaf of *another* key whose first ``len(siblings)`` bits equal ``key``'s: that leaf is
  the only key in the subtree on ``key``'s path (the shortcut leaf), so ``key`` is absent.

The tree is canonical (a subtree of one key is always its leaf, of none always empty), so the
root commits to exactly one proof shape per key: a proof with siblings added, removed,
reordered or changed, or ending elsewhere, hashes to another root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.sparse_hashing import (
    EMPTY_HASH,
    HASH_SIZE,
    INTERNAL_TAG,
    KEY_BITS,
    KEY_SIZE,
    leaf_hash,
    value_hash,
)

__all__ = ["Proof", "ProofLeaf", "verify_proof"]

_R = MerkleErrorReason
_WIRE_FIELDS = frozenset({"leaf", "siblings"})
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class ProofLeaf:
    """The leaf a proof ends on: its key and the digest of its value."""

    key: bytes
    value_hash: bytes


@dataclass(frozen=True, slots=True)
class Proof:
    """Sibling hashes ordered from the root down (``siblings[d]`` is the sibling of the node
    at depth ``d + 1`` on the key's path) and the leaf the walk ended on, if any."""

    siblings: tuple[bytes, ...]
    leaf: ProofLeaf | None

    def to_wire(self) -> dict[CborValue, CborValue]:
        """Plain data for the canonical codec: ``{"siblings": [...], "leaf": [k, vh] | None}``."""
        siblings: list[CborValue] = list(self.siblings)
        leaf: CborValue = None if self.leaf is None else [self.leaf.key, self.leaf.value_hash]
        return {"siblings": siblings, "leaf": leaf}

    @classmethod
    def from_wire(cls, data: object) -> Proof:
        """Inverse of :meth:`to_wire`. Input from outside: every field is type- and
        size-checked; anything else raises :class:`MerkleError` (``MALFORMED_PROOF``)."""
        if not isinstance(data, dict) or set(data) != _WIRE_FIELDS:
            raise MerkleError(_R.MALFORMED_PROOF, "proof must be a map of leaf and siblings")
        siblings, leaf = data["siblings"], data["leaf"]
        if not isinstance(siblings, list | tuple) or len(siblings) > KEY_BITS:
            raise MerkleError(_R.MALFORMED_PROOF, f"siblings must be a list of <= {KEY_BITS}")
        if not all(isinstance(s, bytes) and len(s) == HASH_SIZE for s in siblings):
            raise MerkleError(_R.MALFORMED_PROOF, "every sibling must be a 32-byte hash")
        if leaf is None:
            return cls(tuple(siblings), None)
        if (isinstance(leaf, list | tuple) and len(leaf) == 2
                and isinstance(leaf[0], bytes) and len(leaf[0]) == KEY_SIZE
                and isinstance(leaf[1], bytes) and len(leaf[1]) == HASH_SIZE):
            return cls(tuple(siblings), ProofLeaf(leaf[0], leaf[1]))
        raise MerkleError(_R.MALFORMED_PROOF, "leaf must be null or [32-byte key, 32-byte hash]")


def _well_formed(root: bytes, key: bytes, siblings: Sequence[bytes]) -> bool:
    return (len(root) == HASH_SIZE and len(key) == KEY_SIZE and len(siblings) <= KEY_BITS
            and all(len(sibling) == HASH_SIZE for sibling in siblings))


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """Check that, in the state with hash ``root``, ``key`` maps to ``value`` (``None``:
    ``key`` is absent). Needs nothing but the root; returns ``False`` on any mismatch."""
    siblings = proof.siblings
    if not _well_formed(root, key, siblings):
        return False
    depth = len(siblings)
    key_bits = int.from_bytes(key, "big")
    leaf = proof.leaf
    if value is not None:
        # Inclusion: the walk must end on this very key's leaf, holding this value.
        if leaf is None or leaf.key != key or leaf.value_hash != value_hash(value):
            return False
        node = leaf_hash(key, leaf.value_hash)
    elif leaf is None:
        node = EMPTY_HASH
    else:
        # Non-inclusion by a shortcut leaf: it must be another key, sitting on key's path.
        if len(leaf.key) != KEY_SIZE or len(leaf.value_hash) != HASH_SIZE or leaf.key == key:
            return False
        shift = KEY_BITS - depth
        if int.from_bytes(leaf.key, "big") >> shift != key_bits >> shift:
            return False
        node = leaf_hash(leaf.key, leaf.value_hash)
    sha256 = _sha256
    for level in range(depth - 1, -1, -1):
        sibling = siblings[level]
        if (key_bits >> (KEY_BITS - 1 - level)) & 1:
            node = sha256(INTERNAL_TAG + sibling + node).digest()
        else:
            node = sha256(INTERNAL_TAG + node + sibling).digest()
    return node == root
