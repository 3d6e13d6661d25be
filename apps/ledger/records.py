"""Plain values passed to the ledger's commit service (what a block's execution produced).

The node runtime turns a committed block into a :class:`BlockExecution` (decoded transactions,
state updates, evidence, validator changes, notifications) and hands it with the block and its
QC to :func:`apps.ledger.services.commit_block`, which persists all of it in one transaction.
These are frozen dataclasses so the service can be retried with the same input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from cybermesh.protocol.merkle.nodestore import NodeBatch
from cybermesh.protocol.validator_set import ValidatorSet


@dataclass(frozen=True, slots=True)
class TxRecord:
    """One transaction of a block, as stored: its canonical bytes plus extracted columns."""

    index: int
    tx_id: bytes
    kind: str
    encoded: bytes
    content_hash: bytes
    producer_id: str = ""
    created_at_ms: int | None = None
    signature: bytes = b""
    public_key: bytes = b""
    offender_id: str | None = None  # see apps.ledger.subjects
    severity: int | None = None


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """Set tree key ``key`` (32 bytes, as the executor derived it) to ``value`` at the block's
    height (``None``: delete). ``namespace`` is an optional label stored beside the value."""

    key: bytes
    value: bytes | None
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """Evidence recorded by a block (content-addressed by ``evidence_id``)."""

    evidence_id: bytes
    kind: str
    offender_id: str
    epoch: int
    view: int
    height: int
    reporter_id: str
    proof: bytes
    signature: bytes = b""
    confirmed: bool = False


@dataclass(frozen=True, slots=True)
class ValidatorUpdate:
    """A validator's reputation (integer ppm, as the executor reports it) after the block,
    and its activity when that changed (``None``: unchanged)."""

    validator_id: str
    reputation: int
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A message for the outbox: Kafka topic, partition key, JSON payload (no floats)."""

    topic: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PreparedState:
    """A block's state tree batch, computed when the block was executed (consensus needs the
    root before the block commits: the next header carries it). ``base_root`` is the root of
    the version it was built on (``b""``: the empty state). The commit writes the batch as it
    is if it was built on the stored parent root, and recomputes it otherwise."""

    base_root: bytes
    batch: NodeBatch


@dataclass(frozen=True, slots=True)
class BlockExecution:
    """Everything the executor derived from one block, for the commit to persist.

    ``transactions`` are the block's rows if the caller already decoded the payload (the
    executor did); the commit checks they re-encode to exactly the block's payload, and
    decodes the payload itself when they are ``None``.
    """

    state_updates: tuple[StateUpdate, ...] = ()
    evidence: tuple[EvidenceRecord, ...] = ()
    validator_updates: tuple[ValidatorUpdate, ...] = ()
    notifications: tuple[Notification, ...] = ()
    transactions: tuple[TxRecord, ...] | None = None
    prepared_state: PreparedState | None = None
    validator_set: ValidatorSet | None = None  # the active set from this block on (genesis)


EMPTY_EXECUTION = BlockExecution()


class CommitStatus(enum.Enum):
    COMMITTED = "committed"
    ALREADY_COMMITTED = "already_committed"


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    height: int
    block_hash: bytes
    state_root: bytes
    status: CommitStatus
    attempts: int = field(default=1)
