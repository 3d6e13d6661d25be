"""Ledger reads: lookups by hash and id, and RFC 9162 inclusion proofs of transactions."""

from __future__ import annotations

import pytest

from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.queries import (
    block_by_hash,
    latest_height,
    transaction_by_id,
    transaction_inclusion,
)
from apps.ledger.services import commit_block
from cybermesh.protocol.block_builder import verify_tx_inclusion
from tests.ledger.chain import ChainBuilder

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_blocks_and_transactions_are_found_by_hash_and_id_with_proofs() -> None:
    items = ChainBuilder(txs_per_block=5).build(3)
    assert latest_height() is None
    for item in items:
        commit_block(block=item.block, qc=item.qc, execution=item.execution)
    assert latest_height() == 2
    assert block_by_hash(items[1].block.block_id).height == 1  # type: ignore[union-attr]
    assert block_by_hash(b"\x00" * 32) is None
    for row in TransactionRow.objects.all():
        tx_id = bytes(row.tx_id)
        assert transaction_by_id(tx_id).block_height == row.block_height  # type: ignore[union-attr]
        proof = transaction_inclusion(tx_id)
        assert proof is not None and proof.tx_root == items[row.block_height].block.tx_root
        assert verify_tx_inclusion(tx_id, proof.index, proof.tx_count, list(proof.path),
                                   proof.tx_root)
        assert not verify_tx_inclusion(tx_id, (proof.index + 1) % proof.tx_count,
                                       proof.tx_count, list(proof.path), proof.tx_root)
    assert transaction_inclusion(b"\x01" * 32) is None
