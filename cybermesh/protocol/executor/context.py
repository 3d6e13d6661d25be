"""What a block's execution reads (:class:`BlockContext`) and works in (:class:`Execution`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cybermesh.protocol.executor.events import DomainEvent, IgnoreReason, TxIgnored
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.executor.records import ChainRecord
from cybermesh.protocol.executor.state import StateWriter

__all__ = ["BlockContext", "Execution"]


@dataclass(frozen=True, slots=True)
class BlockContext:
    """The only block data the executor reads besides the transactions: the height and the
    agreed (consensus) timestamp. Never a local clock."""

    height: int
    timestamp_ms: int


@dataclass(slots=True)
class Execution:
    """The working context of one ``apply_block``: the block-local writer, the block's
    height and time, the parameters in force, and the events emitted so far."""

    writer: StateWriter
    chain: ChainRecord
    parameters: ExecutorParameters
    height: int
    now_ms: int
    events: list[DomainEvent] = field(default_factory=list)

    def emit(self, event: DomainEvent | None) -> None:
        if event is not None:
            self.events.append(event)

    def ignore(self, tx_id: bytes, index: int, reason: IgnoreReason) -> None:
        self.events.append(TxIgnored(tx_id, index, reason))
