"""``apply_block``: the deterministic state transition of one committed block.

Pure: it reads the prior :class:`State`, the block's height and agreed timestamp, and the
block's transactions (already decoded, schema-checked and signature-verified by admission and
by the replicas that voted for the block), and returns the next state, the domain events and
the state updates. No clock, no randomness, no floats, no iteration over unordered containers
whose order could leak into the result (every such loop sorts first).

Order inside a block:

1. expiries due by the block's timestamp, in (expires_at, key) order;
2. the transactions, in block order; each is first checked for chain, age (``tx_max_age_ms``,
   ``tx_max_future_ms``) and replay (its id already applied) and otherwise ignored with a
   :class:`TxIgnored` event. A well-formed transaction never fails the block;
3. the epoch boundary (``governance.close_epoch``) and the chain record (height, time, epoch).

Transactions about different subjects commute: their order changes only the order of events,
never the resulting state. Transactions about the same subject apply in block order.
"""

from __future__ import annotations

from collections.abc import Sequence

from cybermesh.protocol.executor.anchors import apply_anchor
from cybermesh.protocol.executor.context import BlockContext, Execution
from cybermesh.protocol.executor.events import DomainEvent, IgnoreReason
from cybermesh.protocol.executor.evidence import apply_evidence
from cybermesh.protocol.executor.governance import apply_governance, close_epoch
from cybermesh.protocol.executor.keys import CHAIN_KEY, tx_key
from cybermesh.protocol.executor.policy import apply_policy, expire_rule
from cybermesh.protocol.executor.quarantine import expire_quarantine
from cybermesh.protocol.executor.records import AppliedTx, QuarantineRecord, RuleRecord
from cybermesh.protocol.executor.security_event import apply_security_event
from cybermesh.protocol.executor.state import EXPIRY_BUCKET_MS, State, StateWriter
from cybermesh.protocol.txs.audit_anchor import AuditAnchor
from cybermesh.protocol.txs.envelope import Transaction
from cybermesh.protocol.txs.evidence import Evidence
from cybermesh.protocol.txs.governance import GovernanceChange
from cybermesh.protocol.txs.policy import PolicyChange
from cybermesh.protocol.txs.security_event import SecurityEvent

__all__ = ["BlockContext", "ExecutorError", "apply_block"]

StateUpdates = dict[bytes, bytes | None]


class ExecutorError(ValueError):
    """The block cannot follow the state (wrong height, time going backwards): a caller bug
    or a consensus fault, never a property of the transactions."""


def _expire(run: Execution, state: State) -> None:
    end_bucket = run.now_ms // EXPIRY_BUCKET_MS
    due = []
    for key in set(state.due_keys(run.now_ms)):
        record = state.get(key)
        expires_at = None if record is None else record.expires_at_ms
        # An entry whose record was rewritten with a later expiry is stale: skip it.
        if expires_at is not None and expires_at // EXPIRY_BUCKET_MS < end_bucket:
            due.append((expires_at, key))
    due.sort()
    writer = run.writer
    for _, key in due:
        record = state.get(key)
        if isinstance(record, QuarantineRecord):
            run.emit(expire_quarantine(run, key, record))
        elif isinstance(record, RuleRecord):
            run.emit(expire_rule(run, key, record))
        else:  # events, evidence, applied ids, fully decayed reputation: silently dropped
            writer.delete(key)


def _apply_tx(run: Execution, index: int, tx: Transaction) -> None:
    tx_id = tx.tx_id
    parameters = run.parameters
    if tx.chain_id != run.chain.chain_id:
        run.ignore(tx_id, index, IgnoreReason.WRONG_CHAIN)
        return
    age_ms = run.now_ms - tx.created_at_ms
    if age_ms > parameters.tx_max_age_ms:
        run.ignore(tx_id, index, IgnoreReason.STALE)
        return
    if -age_ms > parameters.tx_max_future_ms:
        run.ignore(tx_id, index, IgnoreReason.FROM_THE_FUTURE)
        return
    key = tx_key(tx_id)
    if run.writer.get(key) is not None:
        run.ignore(tx_id, index, IgnoreReason.DUPLICATE)
        return
    # Remembered until the transaction would be stale anyway: a replay is then refused by
    # the age check instead.
    remembered_until = tx.created_at_ms + parameters.tx_max_age_ms + 1
    payload = tx.payload
    if isinstance(payload, SecurityEvent):
        apply_security_event(run, tx_id, payload, remembered_until)
        return
    if isinstance(payload, Evidence):
        apply_evidence(run, tx_id, index, payload, remembered_until)
        return
    run.writer.put(key, AppliedTx(tx.kind.value, run.height, remembered_until))
    if isinstance(payload, PolicyChange):
        apply_policy(run, tx_id, index, payload)
    elif isinstance(payload, GovernanceChange):
        apply_governance(run, tx_id, index, payload)
    elif isinstance(payload, AuditAnchor):
        apply_anchor(run, tx_id, index, tx.public_key, payload)


def apply_block(
    state: State, block: BlockContext, txs: Sequence[Transaction]
) -> tuple[State, tuple[DomainEvent, ...], StateUpdates]:
    """Apply a committed block: ``(next state, domain events, state updates)``.

    ``state updates`` maps each changed 32-byte key to its new canonical record bytes, or to
    ``None`` where the key was deleted, in ascending key order: exactly what the sparse Merkle
    tree's ``apply`` takes to compute the block's state root. Raises :class:`ExecutorError`
    if ``block`` is not the next height or its timestamp is before the state's.
    """
    chain = state.chain
    if block.height != chain.height + 1:
        raise ExecutorError(f"block height {block.height} does not follow {chain.height}")
    if block.timestamp_ms < chain.timestamp_ms:
        raise ExecutorError(f"block timestamp {block.timestamp_ms} is before the previous "
                            f"block's {chain.timestamp_ms}")
    writer = StateWriter(state)
    run = Execution(writer, chain, state.parameters, block.height, block.timestamp_ms)
    _expire(run, state)
    for index, tx in enumerate(txs):
        _apply_tx(run, index, tx)
    writer.put(CHAIN_KEY, close_epoch(run))
    next_state, updates = writer.finish(block.timestamp_ms)
    return next_state, tuple(run.events), updates
