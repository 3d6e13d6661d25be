"""The block commit: one serializable transaction per committed block.

:func:`commit_block` writes the block (with its QC), its transactions, the evidence it
records, the state version it produces (Merkle nodes, stale index, materialized values, root,
snapshot row every K heights), validator changes, outbox rows for notifications and an audit
entry, all or nothing. It is retried as a whole on serialization failures (SQLSTATE 40001,
see :mod:`cybermesh.db`): every attempt re-reads what it depends on inside its transaction.

Replays are safe: the same block at a committed height is a no-op. A *different* block at a
committed height (or one that does not extend our tip, or that carries a state root other
than ours) raises :class:`DivergentBlockError` / :class:`LedgerError` and is audited as an
alarm in a separate transaction, so the alarm survives the refused commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone
from prometheus_client import Counter, Histogram

from apps.audit.choices import Outcome
from apps.audit.services import append_entry_in_transaction, record_audit
from apps.evidence.services import record_evidence
from apps.ledger.bulk_insert import insert_rows
from apps.ledger.errors import DivergentBlockError, LedgerError, LedgerErrorReason
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import OutboxMessage
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import compute_tx_root, decode_payload, encode_payload
from apps.ledger.records import (
    EMPTY_EXECUTION,
    BlockExecution,
    CommitOutcome,
    CommitStatus,
    Notification,
    TxRecord,
)
from apps.ledger.rows import block_row, ms_to_datetime
from apps.notifications.services import drain_after_commit
from apps.state.models import StateVersion
from apps.state.services import DEFAULT_SNAPSHOT_INTERVAL, write_state_version
from apps.validators.services import apply_validator_set, apply_validator_updates
from cybermesh.db import DEFAULT_RETRY_POLICY, RetryPolicy, run_serializable
from cybermesh.logging import get_logger
from cybermesh.protocol.consensus.messages import Block, QuorumCert
from cybermesh.protocol.validator_set import ValidatorSet

logger = get_logger(__name__)

COMMITS = Counter("cybermesh_ledger_commits", "Block commits by outcome.", ["status"])
ALARMS = Counter("cybermesh_ledger_alarms", "Refused block commits by reason.", ["reason"])
COMMIT_SECONDS = Histogram("cybermesh_ledger_commit_latency_seconds",
                           "Wall time of one block commit, retries included.")

_ALARM_REASONS = frozenset({LedgerErrorReason.DIVERGENT_BLOCK, LedgerErrorReason.PARENT_MISMATCH,
                            LedgerErrorReason.STATE_ROOT_MISMATCH})


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What can be derived from the block before touching the database (once per call)."""

    block: Block
    qc: QuorumCert
    transactions: tuple[TxRecord, ...]
    payload_is_canonical: bool
    execution: BlockExecution
    node_id: str
    snapshot_interval: int
    using: str
    on_written: Callable[[], None] | None


def _hex(value: bytes) -> str:
    return bytes(value).hex()


def _prepare(*, block: Block, qc: QuorumCert, execution: BlockExecution, node_id: str,
             snapshot_interval: int, using: str,
             on_written: Callable[[], None] | None) -> _Prepared:
    height = block.height
    if qc.block_id != block.block_id or qc.height != height or qc.epoch != block.epoch:
        raise LedgerError(LedgerErrorReason.BAD_BLOCK,
                          f"the commit QC does not certify block {height}", height=height)
    decoded = execution.transactions
    if decoded is not None and (
            encode_payload(record.encoded for record in decoded) != block.payload
            or any(record.index != index for index, record in enumerate(decoded))):
        decoded = None  # not this payload's rows: decode it ourselves
    if decoded is None:
        decoded = decode_payload(block.payload)
    transactions = decoded if decoded is not None else ()
    if decoded is not None and compute_tx_root(transactions) != block.tx_root:
        raise LedgerError(LedgerErrorReason.BAD_BLOCK,
                          f"block {height}: tx_root does not match its transactions",
                          height=height)
    return _Prepared(block=block, qc=qc, transactions=transactions,
                     payload_is_canonical=decoded is not None, execution=execution,
                     node_id=node_id, snapshot_interval=snapshot_interval, using=using,
                     on_written=on_written)


def commit_block(
    *,
    block: Block,
    qc: QuorumCert,
    execution: BlockExecution = EMPTY_EXECUTION,
    node_id: str | None = None,
    snapshot_interval: int | None = None,
    using: str = "default",
    policy: RetryPolicy = DEFAULT_RETRY_POLICY,
    on_written: Callable[[], None] | None = None,
) -> CommitOutcome:
    """Persist one committed block and everything its execution produced (module docstring).

    ``qc`` certifies ``block`` (the commit certificate, not ``block.qc``). ``on_written`` is
    called inside the transaction after every row is written and before the commit (tests use
    it to crash or to race a commit). Raises :class:`DivergentBlockError` or
    :class:`LedgerError` without writing anything but the alarm.
    """
    prepared = _prepare(
        block=block, qc=qc, execution=execution,
        node_id=node_id or settings.NODE_ID,
        snapshot_interval=(snapshot_interval if snapshot_interval is not None else
                           getattr(settings, "STATE_SNAPSHOT_INTERVAL",
                                   DEFAULT_SNAPSHOT_INTERVAL)),
        using=using, on_written=on_written)
    attempts = 0

    def attempt() -> CommitOutcome:
        nonlocal attempts
        attempts += 1
        return _commit_in_transaction(prepared)

    with COMMIT_SECONDS.time():
        try:
            outcome = run_serializable(attempt, using=using, policy=policy,
                                       operation="commit_block")
        except LedgerError as error:
            if error.reason in _ALARM_REASONS:
                _record_alarm(error, block=block, node_id=prepared.node_id)
            raise
    COMMITS.labels(status=outcome.status.value).inc()
    return replace(outcome, attempts=attempts)


def _commit_in_transaction(prepared: _Prepared) -> CommitOutcome:
    block, using = prepared.block, prepared.using
    height, block_id = block.height, block.block_id
    blocks = BlockRow.objects.using(using)
    stored = blocks.filter(height=height).values_list("block_hash", "result_state_root").first()
    if stored is not None:
        return _replayed(block, bytes(stored[0]), bytes(stored[1]))
    base_version = _check_extends_tip(block, using)
    now = timezone.now()
    state = write_state_version(
        version=height, base_version=base_version,
        updates=prepared.execution.state_updates,
        prepared=prepared.execution.prepared_state,
        snapshot_interval=prepared.snapshot_interval, now=now, using=using)
    # INSERT ... ON CONFLICT DO NOTHING, then compare: a block row is never overwritten.
    blocks.bulk_create([block_row(block=block, qc=prepared.qc,
                                  tx_count=len(prepared.transactions),
                                  payload_is_canonical=prepared.payload_is_canonical,
                                  result_state_root=state.root_hash, committed_at=now)],
                       ignore_conflicts=True)
    written = blocks.filter(height=height).values_list("block_hash", flat=True).first()
    if written is None or bytes(written) != block_id:
        raise _divergent(block, bytes(written or b""))
    _write_transactions(height, prepared.transactions, using)
    record_evidence(records=prepared.execution.evidence, committed_height=height, now=now,
                    using=using)
    if prepared.execution.validator_set is not None:
        apply_validator_set(validator_set=prepared.execution.validator_set, height=height,
                            now=now, using=using)
    if block.next_validators is not None:
        apply_validator_set(validator_set=ValidatorSet(block.epoch + 1, block.next_validators),
                            height=height, now=now, using=using)
    apply_validator_updates(updates=prepared.execution.validator_updates, height=height,
                            now=now, using=using)
    _write_outbox(prepared, state.root_hash, now)
    append_entry_in_transaction(
        actor=f"node:{prepared.node_id}", action="ledger.commit_block",
        target=f"block:{height}", outcome=Outcome.SUCCESS,
        details={"height": height, "hash": _hex(block_id), "epoch": block.epoch,
                 "view": block.view, "tx_count": len(prepared.transactions),
                 "state_root": _hex(state.root_hash), "snapshot": state.snapshot})
    if prepared.on_written is not None:
        prepared.on_written()
    return CommitOutcome(height=height, block_hash=block_id, state_root=state.root_hash,
                         status=CommitStatus.COMMITTED)


def _replayed(block: Block, stored_hash: bytes, state_root: bytes) -> CommitOutcome:
    if stored_hash != block.block_id:
        raise _divergent(block, stored_hash)
    return CommitOutcome(height=block.height, block_hash=stored_hash, state_root=state_root,
                         status=CommitStatus.ALREADY_COMMITTED)


def _divergent(block: Block, stored_hash: bytes) -> DivergentBlockError:
    return DivergentBlockError(
        LedgerErrorReason.DIVERGENT_BLOCK,
        f"height {block.height} is committed as {stored_hash.hex()[:16]}, refusing "
        f"{block.block_id.hex()[:16]}", height=block.height, stored_hash=stored_hash,
        offered_hash=block.block_id)


def _check_extends_tip(block: Block, using: str) -> int | None:
    """Check the block continues our chain and state; return the state version to build on."""
    height = block.height
    tip = (BlockRow.objects.using(using).order_by("-height")
           .values_list("height", "block_hash").first())
    if tip is not None:
        tip_height, tip_hash = tip[0], bytes(tip[1])
        if height != tip_height + 1:
            raise LedgerError(LedgerErrorReason.NOT_CONTIGUOUS,
                              f"block {height} does not follow the committed tip {tip_height}",
                              height=height)
        if block.parent_id != tip_hash:
            raise DivergentBlockError(
                LedgerErrorReason.PARENT_MISMATCH,
                f"block {height} extends {block.parent_id.hex()[:16]}, our block "
                f"{tip_height} is {tip_hash.hex()[:16]}", height=height,
                stored_hash=tip_hash, offered_hash=block.parent_id)
    parent_state = (StateVersion.objects.using(using).filter(version=height - 1)
                    .values_list("root_hash", flat=True).first())
    if parent_state is not None:
        if bytes(parent_state) != block.state_root:
            raise LedgerError(
                LedgerErrorReason.STATE_ROOT_MISMATCH,
                f"block {height} carries state root {block.state_root.hex()[:16]}, our state "
                f"after {height - 1} is {bytes(parent_state).hex()[:16]}", height=height)
        return height - 1
    any_state = StateVersion.objects.using(using).aggregate(top=Max("version"))["top"]
    if tip is not None or any_state is not None:
        raise LedgerError(LedgerErrorReason.MISSING_STATE,
                          f"state version {height - 1} is not stored", height=height)
    return None  # the very first block, on the empty state


_TX_FIELDS = ("block_height", "idx", "tx_id", "kind", "payload", "content_hash", "producer_id",
              "created_at", "signature", "public_key", "is_replay", "offender_id", "severity")
_OUTBOX_FIELDS = ("id", "dedupe_id", "topic", "key", "payload", "height", "position",
                  "created_at")


def _write_transactions(height: int, transactions: tuple[TxRecord, ...], using: str) -> None:
    if not transactions:
        return
    ids = list({record.tx_id for record in transactions})
    committed = {bytes(tx_id) for tx_id in TransactionRow.objects.using(using)
                 .filter(tx_id__in=ids, is_replay=False).values_list("tx_id", flat=True)}
    rows = []
    for record in transactions:
        is_replay = record.tx_id in committed
        committed.add(record.tx_id)
        rows.append((height, record.index, record.tx_id, record.kind, record.encoded,
                     record.content_hash, record.producer_id,
                     ms_to_datetime(record.created_at_ms), record.signature,
                     record.public_key, is_replay, record.offender_id, record.severity))
    insert_rows(TransactionRow, _TX_FIELDS, rows, using=using)


def _write_outbox(prepared: _Prepared, state_root: bytes, now: Any) -> None:
    block = prepared.block
    commit_notice = Notification(
        topic=settings.KAFKA_TOPICS["commits"], key=str(block.height),
        payload={"height": block.height, "hash": _hex(block.block_id),
                 "parent_hash": _hex(block.parent_id), "epoch": block.epoch,
                 "view": block.view, "timestamp_ms": block.timestamp_ms,
                 "tx_count": len(prepared.transactions), "state_root": _hex(state_root)})
    notices = (commit_notice, *prepared.execution.notifications)
    insert_rows(OutboxMessage, _OUTBOX_FIELDS, [
        (uuid.uuid4(), f"block:{block.height}:{position}", notice.topic, notice.key,
         notice.payload, block.height, position, now)
        for position, notice in enumerate(notices)], using=prepared.using)
    # Enqueue the Kafka drain once this transaction commits (never if it rolls back).
    drain_after_commit(using=prepared.using)


def _record_alarm(error: LedgerError, *, block: Block, node_id: str) -> None:
    """Audit a refused block in its own transaction (the commit's was rolled back)."""
    ALARMS.labels(reason=error.reason.value).inc()
    details: dict[str, Any] = {"height": error.height, "reason": error.reason.value,
                               "offered_block": _hex(block.block_id), "epoch": block.epoch,
                               "view": block.view, "proposer": block.proposer,
                               "message": str(error)}
    if isinstance(error, DivergentBlockError):
        details["stored_hash"] = _hex(error.stored_hash)
        details["offered_hash"] = _hex(error.offered_hash)
    logger.error("ledger.alarm", **details)
    record_audit(actor=f"node:{node_id}", action=f"ledger.alarm.{error.reason.value}",
                 target=f"block:{error.height}", outcome=Outcome.FAILURE, details=details)
