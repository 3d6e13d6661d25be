"""The state at height 0, and the validator set a state makes active."""

from __future__ import annotations

from collections.abc import Iterable

from cybermesh.protocol.executor.keys import (
    CHAIN_KEY,
    PARAMETERS_KEY,
    PENDING_KEY,
    VALIDATORS_KEY,
)
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.executor.records import (
    ChainRecord,
    ParametersRecord,
    PendingRecord,
    ValidatorEntry,
    ValidatorsRecord,
)
from cybermesh.protocol.executor.state import State
from cybermesh.protocol.validator_set import Validator, ValidatorSet

__all__ = ["active_validator_set", "genesis_state"]


def genesis_state(
    *,
    chain_id: str,
    genesis_time_ms: int,
    validators: Iterable[Validator],
    parameters: ExecutorParameters | None = None,
) -> State:
    """Height 0 of ``chain_id``: epoch 0 with every genesis validator active."""
    parameters = parameters or ExecutorParameters()
    problems = parameters.problems()
    if problems:
        raise ValueError("; ".join(problems))
    validator_set = ValidatorSet(0, tuple(validators))  # checks ids, keys, powers
    entries = tuple(ValidatorEntry(v.validator_id, v.public_key, v.power, v.address)
                    for v in validator_set)
    return State.from_records({
        CHAIN_KEY: ChainRecord(chain_id, 0, genesis_time_ms, 0, 1),
        PARAMETERS_KEY: ParametersRecord(parameters),
        VALIDATORS_KEY: ValidatorsRecord(0, entries, tuple(e.validator_id for e in entries)),
        PENDING_KEY: PendingRecord(()),
    })


def active_validator_set(state: State) -> ValidatorSet:
    """The validator set the state makes active (for its epoch), for consensus."""
    record = state.validators
    return ValidatorSet(record.epoch, tuple(
        Validator(entry.validator_id, entry.public_key, entry.power, entry.address)
        for entry in record.active_entries()))
