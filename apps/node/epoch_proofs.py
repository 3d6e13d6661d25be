"""Durable epoch-end proofs (see :class:`apps.node.models.EpochEndProof`).

A proof is kept in its *serving* form: the reconfiguration block, the certified blocks above
it, and the QC on the last of them. That is exactly what a ledger-sync response appends after
the reconfiguration block (apps/node/ledger_sync.py) and what the core's own epoch sync answers
with, so a node can prove an epoch change it saw end however long ago, and after restarts.
"""

from __future__ import annotations

from apps.node.models import EpochEndProof
from cybermesh.db import serializable_transaction
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.consensus.messages import SyncResponse
from cybermesh.protocol.consensus.wire import decode_message, encode_message


def serving_form(proof: SyncResponse) -> SyncResponse | None:
    """``proof`` cut to its reconfiguration block and what certifies it; None if it holds
    no reconfiguration block or no QC."""
    for index, block in enumerate(proof.blocks):
        if block.next_validators is not None and proof.qc is not None \
                and index + 1 < len(proof.blocks):
            return SyncResponse(proof.epoch, proof.blocks[index:], proof.qc)
    return None


@serializable_transaction
def _store(epoch: int, height: int, data: bytes) -> None:
    # First one wins: every valid proof of an epoch proves the same change.
    EpochEndProof.objects.get_or_create(
        epoch=epoch, defaults={"reconfiguration_height": height, "data": data})


def persist_epoch_proof(proof: SyncResponse) -> bool:
    """Keep ``proof`` (its serving form) unless one for its epoch is kept already."""
    served = serving_form(proof)
    if served is None:
        return False
    if not EpochEndProof.objects.filter(epoch=served.epoch).exists():
        _store(served.epoch, served.blocks[0].height, encode_message(served))
    return True


def load_epoch_proof(epoch: int) -> SyncResponse | None:
    data = EpochEndProof.objects.filter(epoch=epoch).values_list("data", flat=True).first()
    if data is None:
        return None
    try:
        message = decode_message(bytes(data))
    except MessageError:
        return None  # a damaged row: peers still hold the proof
    return message if isinstance(message, SyncResponse) and message.qc is not None else None


def recent_epoch_proofs(below_epoch: int, count: int) -> dict[int, SyncResponse]:
    """The kept proofs of the ``count`` epochs before ``below_epoch``."""
    epochs = EpochEndProof.objects.filter(epoch__lt=below_epoch).order_by("-epoch") \
        .values_list("epoch", flat=True)[:count]
    found = {epoch: load_epoch_proof(epoch) for epoch in epochs}
    return {epoch: proof for epoch, proof in found.items() if proof is not None}
