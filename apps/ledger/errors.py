"""The ledger's errors. Each refusal has a reason (an enum member) for metrics and tests."""

from __future__ import annotations

import enum


class LedgerErrorReason(enum.Enum):
    DIVERGENT_BLOCK = "divergent_block"          # another block is committed at this height
    PARENT_MISMATCH = "parent_mismatch"          # the block does not extend our committed tip
    STATE_ROOT_MISMATCH = "state_root_mismatch"  # header state root != our root after parent
    NOT_CONTIGUOUS = "not_contiguous"            # a gap between the tip and the block
    MISSING_STATE = "missing_state"              # the parent's state version is not stored
    BAD_BLOCK = "bad_block"                      # the block or QC are inconsistent in itself


class LedgerError(Exception):
    """A block that must not be committed here; nothing was written."""

    def __init__(self, reason: LedgerErrorReason, message: str, *, height: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.height = height


class DivergentBlockError(LedgerError):
    """Our ledger and the offered block disagree on history: a safety alarm, never a retry.

    ``stored_hash`` is what we committed (at ``height``, or at the parent height for
    ``PARENT_MISMATCH``), ``offered_hash`` what we were asked to commit.
    """

    def __init__(self, reason: LedgerErrorReason, message: str, *, height: int,
                 stored_hash: bytes, offered_hash: bytes) -> None:
        super().__init__(reason, message, height=height)
        self.stored_hash = stored_hash
        self.offered_hash = offered_hash
