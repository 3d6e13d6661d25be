"""The one exception of the sparse Merkle tree, with a reason enum for metrics and tests."""

from __future__ import annotations

import enum

__all__ = ["MerkleError", "MerkleErrorReason"]


class MerkleErrorReason(enum.Enum):
    """Why an update, a read, a stored node or a proof was refused."""

    INVALID_KEY = "invalid_key"
    INVALID_VALUE = "invalid_value"
    INVALID_VERSION = "invalid_version"
    VERSION_NOT_FOUND = "version_not_found"
    MISSING_NODE = "missing_node"
    CONFLICTING_BATCH = "conflicting_batch"
    MALFORMED_NODE = "malformed_node"
    MALFORMED_PROOF = "malformed_proof"


class MerkleError(ValueError):
    """A refused sparse Merkle tree operation; ``reason`` says which rule refused it."""

    reason: MerkleErrorReason
    detail: str

    def __init__(self, reason: MerkleErrorReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")
