"""Why a governance command refused to go on: one enum reason and one line for the operator."""

from __future__ import annotations

import enum

__all__ = ["GovernanceError", "GovernanceProblem"]


class GovernanceProblem(enum.Enum):
    NO_STATE = "no_state"  # this node has no committed state to check a change against
    BAD_ARGUMENT = "bad_argument"
    BAD_PROPOSAL = "bad_proposal"  # a proposal file that is not what it claims
    BAD_CERTIFICATE = "bad_certificate"
    KEY = "key"  # a key file that cannot be used
    WRONG_CHAIN = "wrong_chain"
    WRONG_EPOCH = "wrong_epoch"
    NOT_A_VALIDATOR = "not_a_validator"
    BAD_APPROVAL = "bad_approval"
    NO_QUORUM = "no_quorum"
    INVALID_CHANGE = "invalid_change"
    DUPLICATE_CHANGE = "duplicate_change"
    TOO_MANY_PENDING = "too_many_pending"
    REJECTED = "rejected"  # refused by mempool admission
    UNKNOWN_TRANSACTION = "unknown_transaction"
    TIMEOUT = "timeout"


class GovernanceError(Exception):
    """A refused governance step; ``str()`` is one line that names what to do."""

    def __init__(self, problem: GovernanceProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
