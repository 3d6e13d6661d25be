"""Merkle structures of the ledger.

* :mod:`.transparency`: RFC 9162 Merkle tree hash, inclusion and consistency proofs; a block's
  ``tx_root`` is ``tree_hash`` of its canonical transaction encodings.
* :mod:`.sparse`: the versioned sparse Merkle tree behind ``state_root``, with inclusion and
  non-inclusion proofs (:mod:`.sparse_proof`) over a pluggable :mod:`.nodestore`.

``docs/merkle.md`` describes the formats and the storage contract.
"""

from cybermesh.protocol.merkle.errors import MerkleError, MerkleErrorReason
from cybermesh.protocol.merkle.nodestore import (
    InMemoryNodeStore,
    NodeBatch,
    NodeKey,
    NodeReader,
    NodeStore,
    StagedNodeReader,
)
from cybermesh.protocol.merkle.sparse import SparseMerkleTree
from cybermesh.protocol.merkle.sparse_proof import Proof, ProofLeaf, verify_proof
from cybermesh.protocol.merkle.transparency import (
    consistency_proof,
    inclusion_proof,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "InMemoryNodeStore",
    "MerkleError",
    "MerkleErrorReason",
    "NodeBatch",
    "NodeKey",
    "NodeReader",
    "NodeStore",
    "Proof",
    "ProofLeaf",
    "SparseMerkleTree",
    "StagedNodeReader",
    "consistency_proof",
    "inclusion_proof",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
    "verify_proof",
]
