"""Running the deterministic executor on committed blocks, for the ledger commit.

:class:`LedgerExecutor` holds the executor :class:`State` of the committed tip. For each
committed block it decodes the transactions, runs ``apply_block`` and turns the result into a
:class:`~apps.ledger.records.BlockExecution`: the state updates (32-byte tree keys, canonical
record bytes), evidence rows, validator reputation changes and outbox notifications. Only
after :func:`~apps.ledger.services.commit_block` succeeded does the caller adopt the new state
(:meth:`LedgerExecutor.advance`), so a refused or crashed commit never leaves the in-memory
state ahead of the database. After a restart :meth:`LedgerExecutor.load` rebuilds the state
from the materialized values of the latest version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings

from apps.ledger.payload import decode_payload_transactions, record_of
from apps.ledger.records import (
    BlockExecution,
    CommitOutcome,
    EvidenceRecord,
    Notification,
    StateUpdate,
    TxRecord,
    ValidatorUpdate,
)
from apps.ledger.services import commit_block
from apps.state.queries import iter_state
from apps.state.services import StateError, latest_version, prepare_state_version
from cybermesh.protocol.codec import CborValue
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.executor import BlockContext, State, active_validator_set, apply_block
from cybermesh.protocol.executor.events import (
    AuditAnchored,
    DomainEvent,
    EvidenceConfirmed,
    ParametersChanged,
    PolicyChanged,
    Quarantined,
    Released,
    ReputationChanged,
    TxIgnored,
    ValidatorSetChanged,
)
from cybermesh.protocol.executor.records import decode_record
from cybermesh.protocol.txs.envelope import Transaction
from cybermesh.protocol.txs.evidence import Evidence

_EVENT_TOPICS: dict[type, str] = {
    ReputationChanged: "reputation",
    Quarantined: "reputation",
    Released: "reputation",
    PolicyChanged: "policy_updates",
    EvidenceConfirmed: "evidence_updates",
    ValidatorSetChanged: "commits",
    ParametersChanged: "commits",
    AuditAnchored: "commits",
}


def decode_block_transactions(block: Block) -> tuple[tuple[TxRecord, ...] | None,
                                                      tuple[Transaction, ...]]:
    """The block's rows and its transactions, decoded once (signatures were checked before
    the vote). Bytes that are not a transaction, which ``validate_payload`` keeps out of
    honest blocks, are stored as opaque rows and change no state."""
    decoded = decode_payload_transactions(block.payload)
    if decoded is None:
        return None, ()
    return decoded


def to_json(value: CborValue) -> Any:
    """CBOR-shaped event data as JSON: byte strings become lowercase hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


def _event_key(event: DomainEvent) -> str:
    if isinstance(event, ReputationChanged | Quarantined | Released):
        return str(event.subject)
    if isinstance(event, PolicyChanged):
        return f"{event.entity[0]}:{event.entity[1]}"
    if isinstance(event, EvidenceConfirmed):
        return event.evidence_id.hex()
    if isinstance(event, AuditAnchored):
        return event.validator_id
    return ""


def notifications_for(events: Iterable[DomainEvent]) -> tuple[Notification, ...]:
    """Outbox notifications for the events that are published (not ``TxIgnored``)."""
    notices = []
    for event in events:
        topic = _EVENT_TOPICS.get(type(event))
        if topic is None:
            continue
        encoded = event.to_cbor()
        assert isinstance(encoded, list)  # noqa: S101 - every event encodes as [type, ...]
        notices.append(Notification(
            topic=settings.KAFKA_TOPICS[topic], key=_event_key(event),
            payload={"type": encoded[0], "fields": to_json(encoded[1:])}))
    return tuple(notices)


def _evidence_records(block: Block, transactions: Sequence[Transaction],
                      events: Sequence[DomainEvent]) -> tuple[EvidenceRecord, ...]:
    confirmed = {event.evidence_id: event for event in events
                 if isinstance(event, EvidenceConfirmed)}
    ignored = {event.tx_id for event in events if isinstance(event, TxIgnored)}
    records = []
    for transaction in transactions:
        evidence = transaction.payload
        if not isinstance(evidence, Evidence) or transaction.tx_id in ignored:
            continue
        confirmation = confirmed.get(transaction.tx_id)
        if evidence.equivocation is not None:
            proof = evidence.equivocation
            offender, epoch, view, height = (proof.validator_id, proof.epoch, proof.view,
                                             proof.first.height)
        else:
            subjects = confirmation.subjects if confirmation else ()
            offender = str(subjects[0]) if subjects else ""
            epoch, view, height = block.epoch, 0, block.height
        records.append(EvidenceRecord(
            evidence_id=transaction.tx_id, kind=evidence.kind.value, offender_id=offender,
            epoch=epoch, view=view, height=height, reporter_id=transaction.producer_id,
            proof=transaction.wire, signature=transaction.signature,
            confirmed=confirmation is not None))
    return tuple(records)


def _validator_updates(events: Sequence[DomainEvent]) -> tuple[ValidatorUpdate, ...]:
    latest: dict[str, int] = {}
    for event in events:
        if isinstance(event, ReputationChanged) and event.subject.is_validator:
            latest[event.subject.value] = event.new_ppm
    return tuple(ValidatorUpdate(validator_id, reputation)
                 for validator_id, reputation in sorted(latest.items()))


@dataclass(frozen=True, slots=True)
class ExecutedBlock:
    state: State
    execution: BlockExecution
    events: tuple[DomainEvent, ...]


def record_label(key: bytes, value: bytes | None, before: State,
                 after: State | None = None) -> str:
    """The record type stored at ``key`` (``rule``, ``quarantine``, ...): the ``namespace``
    label of its state_kv row, so reads such as "every policy rule" use an index, not a scan.
    A deletion is labelled with the type of the record it removes. ``after``: the state the
    update produced, whose typed record at ``key`` is the one ``value`` encodes (read there
    instead of decoding ``value`` again)."""
    if value is None:
        record = before.get(key)
    else:
        record = after.get(key) if after is not None else None
        if record is None:
            record = decode_record(value)
    return "" if record is None else record.TYPE.name.lower()


def execute_block(state: State, block: Block, *,
                  transactions: Sequence[Transaction] | None = None) -> ExecutedBlock:
    """Run the executor on ``block`` over ``state``: pure, the database is not touched.

    ``transactions``: the block's payload already decoded by ``validate_payload`` (every item
    a transaction of this chain, in payload order), which a replica has in hand when it
    executes a proposal it just checked; the payload is then not decoded a second time.
    Without it the payload is decoded here (committed blocks from sync, a restart).
    """
    if transactions is None:
        records, transactions = decode_block_transactions(block)
    else:
        records = tuple(record_of(index, transaction)
                        for index, transaction in enumerate(transactions))
    next_state, events, updates = apply_block(
        state, BlockContext(height=block.height, timestamp_ms=block.timestamp_ms),
        transactions)
    execution = BlockExecution(
        state_updates=tuple(StateUpdate(key, value, record_label(key, value, state, next_state))
                            for key, value in sorted(updates.items())),
        evidence=_evidence_records(block, transactions, events),
        validator_updates=_validator_updates(events),
        notifications=notifications_for(events), transactions=records)
    return ExecutedBlock(next_state, execution, events)


def genesis_execution(state: State) -> BlockExecution:
    """What committing the genesis block writes: the genesis ``State`` as the first version,
    and its validator set as the active validators."""
    return BlockExecution(
        state_updates=tuple(StateUpdate(key, value, record_label(key, value, state))
                            for key, value in sorted(state.entries().items())),
        validator_set=active_validator_set(state))


class LedgerExecutor:
    """The executor state of the committed tip (see the module docstring)."""

    def __init__(self, state: State) -> None:
        self.state = state

    @classmethod
    def load(cls, *, using: str = "default") -> LedgerExecutor:
        version = latest_version(using=using)
        if version is None:
            raise StateError("no state is stored yet; commit the genesis block first")
        return cls(State.from_entries(dict(iter_state(version, using=using))))

    def execute(self, block: Block, *, using: str = "default") -> ExecutedBlock:
        """Execute ``block`` and compute its state tree batch on the stored parent version
        (outside any transaction), so the commit only writes."""
        executed = execute_block(self.state, block)
        prepared = prepare_state_version(version=block.height, base_version=block.height - 1,
                                         updates=executed.execution.state_updates,
                                         using=using)
        return replace(executed, execution=replace(executed.execution,
                                                   prepared_state=prepared))

    def advance(self, executed: ExecutedBlock) -> None:
        """Adopt the state of a block whose commit succeeded."""
        self.state = executed.state


def commit_genesis(*, state: State, block: Block, qc: QuorumCert,
                   **commit_options: Any) -> CommitOutcome:
    """Commit the epoch-0 root block with the genesis state as its state version."""
    return commit_block(block=block, qc=qc, execution=genesis_execution(state),
                        **commit_options)


def commit_with_executor(*, executor: LedgerExecutor, block: Block, qc: QuorumCert,
                         **commit_options: Any) -> CommitOutcome:
    """Execute a committed block on the tip state, persist it, then adopt the new state.

    A block at or below the executor's height is a replay (consensus re-announcing what is
    already committed, e.g. after a restart): it is not executed, and ``commit_block`` turns
    it into a no-op, or into a divergence alarm if it differs from what we committed."""
    if block.height <= executor.state.height:
        return commit_block(block=block, qc=qc, **commit_options)
    executed = executor.execute(block, using=commit_options.get("using", "default"))
    outcome = commit_block(block=block, qc=qc, execution=executed.execution, **commit_options)
    executor.advance(executed)
    return outcome
