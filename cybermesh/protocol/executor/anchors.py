"""Audit anchors: the latest audit-log head each validator committed to the ledger.

An anchor applies only if the envelope's public key is the key registered for the validator
(the schema already requires producer id == validator id) and its ``audit_seq`` is greater
than the last anchored one: an anchor can never move a validator's audit head backwards.
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import AuditAnchored, IgnoreReason
from cybermesh.protocol.executor.keys import anchor_key
from cybermesh.protocol.executor.records import AnchorRecord
from cybermesh.protocol.txs.audit_anchor import AuditAnchor

__all__ = ["apply_anchor"]


def apply_anchor(run: Execution, tx_id: bytes, index: int, public_key: bytes,
                 anchor: AuditAnchor) -> None:
    entry = run.writer.base.validators.get(anchor.validator_id)
    if entry is None:
        run.ignore(tx_id, index, IgnoreReason.UNKNOWN_VALIDATOR)
        return
    if entry.public_key != public_key:
        run.ignore(tx_id, index, IgnoreReason.UNAUTHORIZED)
        return
    key = anchor_key(anchor.validator_id)
    previous = run.writer.get_typed(key, AnchorRecord)
    if previous is not None and anchor.audit_seq <= previous.audit_seq:
        run.ignore(tx_id, index, IgnoreReason.STALE_ANCHOR)
        return
    run.writer.put(key, AnchorRecord(anchor.validator_id, anchor.audit_seq, anchor.head_hash,
                                     anchor.hmac_key_id, run.height, tx_id))
    run.emit(AuditAnchored(anchor.validator_id, anchor.audit_seq, anchor.head_hash, tx_id))
