"""Durable safety data: the record that makes a double signature impossible across restarts.

The consensus core returns ``PersistSafetyData`` before any vote or timeout it wants sent; the
worker calls :func:`persist_safety_data` and only then performs the sends. The write is its own
serializable transaction, so when it returns the database has made it durable.

A node whose ledger exists but whose safety record is missing (a wiped or restored disk) must
not vote until it has watched the network move past any view it could have voted in: see
:func:`needs_double_sign_guard`.
"""

from __future__ import annotations

from apps.node.models import ConsensusRecovery, SafetyRecord
from cybermesh.db import serializable_transaction
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.messages import SyncResponse
from cybermesh.protocol.consensus.safety import SafetyData
from cybermesh.protocol.consensus.wire import decode_message, encode_message


@serializable_transaction
def persist_safety_data(*, node_id: str, data: SafetyData) -> None:
    current = SafetyRecord.objects.filter(node_id=node_id).first()
    if current is not None and (current.epoch, current.last_voted_view) > (
            data.epoch, data.last_voted_view):
        # Safety data only moves forward; a regression means two workers share one identity.
        raise RuntimeError(
            f"refusing to move safety data of {node_id} backwards "
            f"(stored epoch {current.epoch} view {current.last_voted_view}, "
            f"new epoch {data.epoch} view {data.last_voted_view})")
    SafetyRecord.objects.update_or_create(
        node_id=node_id,
        defaults={"epoch": data.epoch, "last_voted_view": data.last_voted_view,
                  "data": data.to_bytes()})


def load_safety_data(*, node_id: str) -> SafetyData | None:
    record = SafetyRecord.objects.filter(node_id=node_id).first()
    if record is None:
        return None
    return SafetyData.from_bytes(bytes(record.data))


def needs_double_sign_guard(*, has_ledger: bool, safety: SafetyData | None) -> bool:
    """True when the node has history but lost its safety data: it must watch before voting."""
    return has_ledger and safety is None


@serializable_transaction
def persist_recovery(*, node_id: str, response: SyncResponse) -> None:
    """Store the highest QC and the uncommitted chain up to it (see ConsensusRecovery)."""
    assert response.qc is not None  # noqa: S101 -- the record is about a QC
    ConsensusRecovery.objects.update_or_create(
        node_id=node_id, defaults={"epoch": response.epoch, "qc_view": response.qc.view,
                                   "data": encode_message(response)})


def load_recovery(*, node_id: str, epoch: int) -> SyncResponse | None:
    """The stored recovery chain for ``epoch``; None if absent, of another epoch, or corrupt."""
    record = ConsensusRecovery.objects.filter(node_id=node_id, epoch=epoch).first()
    if record is None:
        return None
    try:
        message = decode_message(bytes(record.data))
    except MessageError:
        return None  # liveness data only: a damaged row costs a sync from peers, nothing more
    return message if isinstance(message, SyncResponse) and message.qc is not None else None
