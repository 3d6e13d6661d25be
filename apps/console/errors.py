"""Why a console service refused: one exception, the reason an enum member (tests and the
admin's messages match on it)."""

from __future__ import annotations

import enum


class ConsoleProblem(enum.Enum):
    NOT_FOUND = "not_found"
    BAD_TRANSITION = "bad_transition"  # the workflow does not allow this status change
    PERMISSION = "permission"  # the user lacks the console permission
    BAD_INPUT = "bad_input"  # a malformed tag, entity, reason, duration...
    NO_OFFENDER = "no_offender"  # the case names no entity a policy can act on
    SIGNER_UNAVAILABLE = "signer_unavailable"  # no usable console producer key
    CONFLICT = "conflict"  # the case changed under us (another analyst acted first)


class ConsoleError(Exception):
    def __init__(self, problem: ConsoleProblem, message: str) -> None:
        self.problem = problem
        super().__init__(message)
