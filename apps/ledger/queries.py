"""Reads of the committed ledger that need care: lookups by hash or id, inclusion proofs."""

from __future__ import annotations

from dataclasses import dataclass

from apps.ledger.models import Block as BlockRow
from apps.ledger.models import Transaction as TransactionRow
from cybermesh.protocol.block_builder import tx_inclusion_proof


def latest_height(*, using: str = "default") -> int | None:
    row = BlockRow.objects.using(using).order_by("-height").values_list("height", flat=True)
    return row.first()


def block_by_hash(block_hash: bytes, *, using: str = "default") -> BlockRow | None:
    """The committed block with this id (the unique index on ``blocks.hash``)."""
    return BlockRow.objects.using(using).filter(block_hash=block_hash).first()


def transaction_by_id(tx_id: bytes, *, using: str = "default") -> TransactionRow | None:
    """The committed transaction with this id. A replay stored in a later block (see
    ``Transaction.is_replay``) is not what an id names: the first commit is."""
    return (TransactionRow.objects.using(using).filter(tx_id=tx_id, is_replay=False)
            .first())


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 audit path of a transaction in its block's ``tx_root``."""

    height: int
    index: int
    tx_count: int
    tx_root: bytes
    path: tuple[bytes, ...]


def transaction_inclusion(tx_id: bytes, *, using: str = "default") -> InclusionProof | None:
    """The proof that ``tx_id`` is entry ``index`` of its block's tx root, checkable by any
    RFC 9162 verifier (``cybermesh.protocol.block_builder.verify_tx_inclusion``)."""
    row = transaction_by_id(tx_id, using=using)
    if row is None:
        return None
    block = BlockRow.objects.using(using).get(height=row.block_height)
    ids = [bytes(value) for value in TransactionRow.objects.using(using)
           .filter(block_height=row.block_height).order_by("idx")
           .values_list("tx_id", flat=True)]
    return InclusionProof(height=row.block_height, index=row.idx, tx_count=len(ids),
                          tx_root=bytes(block.tx_root),
                          path=tuple(tx_inclusion_proof(ids, row.idx)))
