"""A small chain driver for executor tests: genesis, next blocks, and roots per height."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cybermesh.protocol.executor import (
    BlockContext,
    ExecutorParameters,
    State,
    StateRootTracker,
    apply_block,
    genesis_state,
    state_root,
)
from cybermesh.protocol.executor.events import DomainEvent, IgnoreReason, TxIgnored
from cybermesh.protocol.txs import Entity, Transaction
from cybermesh.protocol.validator_set import Validator
from tests.protocol.txs.tx_builders import (
    CHAIN_ID,
    T0,
    VALIDATOR_IDS,
    VALIDATOR_KEYS,
    security_event,
    signed,
)

PARAMETERS = ExecutorParameters(epoch_length_blocks=5, min_validators=3)


def genesis(parameters: ExecutorParameters = PARAMETERS, time_ms: int = T0 - 10_000) -> State:
    return genesis_state(
        chain_id=CHAIN_ID, genesis_time_ms=time_ms, parameters=parameters,
        validators=[Validator(validator_id, key.public_key.raw, 10, f"10.0.0.{i}:7000")
                    for i, (validator_id, key) in enumerate(zip(VALIDATOR_IDS, VALIDATOR_KEYS,
                                                                strict=True))])


@dataclass
class Step:
    state: State
    events: tuple[DomainEvent, ...]
    updates: dict[bytes, bytes | None]


class Chain:
    """Applies blocks one after another and keeps an incremental state root."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state or genesis()
        self.tracker = StateRootTracker(self.state)
        self.steps: list[Step] = []

    @property
    def now_ms(self) -> int:
        return self.state.chain.timestamp_ms

    def block(self, txs: Sequence[Transaction] = (), *, at_ms: int | None = None,
              advance_ms: int = 1000) -> Step:
        timestamp = at_ms if at_ms is not None else self.now_ms + advance_ms
        state, events, updates = apply_block(
            self.state, BlockContext(self.state.height + 1, timestamp), txs)
        self.tracker.apply(updates, state.height)
        self.state = state
        step = Step(state, events, updates)
        self.steps.append(step)
        return step

    def root(self) -> bytes:
        return self.tracker.root()


def full_root(state: State) -> bytes:
    return state_root(state)


def event_tx(offender: str = "203.0.113.7", *, kind: str = "ip", nonce: int = 1,
             created_at_ms: int, severity: int = 10, confidence_bps: int = 10_000,
             **overrides: Any) -> Transaction:
    payload = security_event(offender=Entity.of(kind, offender), severity=severity,
                             confidence_bps=confidence_bps,
                             observed_at_ms=created_at_ms - 1, **overrides)
    return signed(payload, nonce=nonce, created_at_ms=created_at_ms)


def of_type(events: Sequence[DomainEvent], kind: type) -> list[Any]:
    return [event for event in events if isinstance(event, kind)]


def ignored(events: Sequence[DomainEvent]) -> list[IgnoreReason]:
    return [event.reason for event in events if isinstance(event, TxIgnored)]
