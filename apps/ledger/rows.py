"""Blocks and QCs to database rows and back, byte for byte.

Going back matters as much as going in: ``ledger verify`` and ``ledger export`` rebuild the
:class:`Block` from its row and its transaction rows and recompute its id, so every header
field is stored as it was, and the payload is either re-encoded from the transaction rows or
kept verbatim when it is not the canonical transaction array.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from apps.ledger.models import Block as BlockRow
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import encode_payload
from cybermesh.protocol.codec import DecodeLimits, decode, encode
from cybermesh.protocol.consensus.messages import Block, QuorumCert, validators_to_cbor
from cybermesh.protocol.consensus.wire import DEFAULT_WIRE_LIMITS, parse_block, parse_qc
from cybermesh.protocol.validator_set import Validator

_CERT_LIMITS = DecodeLimits(max_bytes=1 << 20, max_depth=4, max_items=4096)


def encode_qc(qc: QuorumCert) -> bytes:
    return encode(qc.to_cbor())


def decode_qc(data: bytes | memoryview) -> QuorumCert:
    return parse_qc(decode(bytes(data), _CERT_LIMITS))


def encode_validators(validators: tuple[Validator, ...] | None) -> bytes | None:
    return None if validators is None else encode(validators_to_cbor(validators))


def ms_to_datetime(milliseconds: int | None) -> datetime | None:
    if milliseconds is None:
        return None
    return datetime.fromtimestamp(milliseconds // 1000, tz=UTC).replace(
        microsecond=(milliseconds % 1000) * 1000)


def block_row(*, block: Block, qc: QuorumCert, tx_count: int, payload_is_canonical: bool,
              result_state_root: bytes, committed_at: datetime) -> BlockRow:
    return BlockRow(
        height=block.height, block_hash=block.block_id, parent_hash=block.parent_id,
        epoch=block.epoch, view=block.view, proposer_id=block.proposer,
        timestamp_ms=block.timestamp_ms, tx_count=tx_count, tx_root=block.tx_root,
        state_root=block.state_root, result_state_root=result_state_root,
        validator_set_hash=block.validator_set_hash, justify_qc=encode_qc(block.qc),
        qc=encode_qc(qc), next_validators=encode_validators(block.next_validators),
        payload=None if payload_is_canonical else block.payload, committed_at=committed_at)


def rebuild_block(row: BlockRow, encoded_transactions: Sequence[bytes]) -> Block:
    """The :class:`Block` a row (and its transactions, in index order) was written from.

    Decoding goes through the consensus wire parser, so a tampered row that no longer parses
    raises ``MessageError`` rather than producing a wrong block silently."""
    payload = (bytes(row.payload) if row.payload is not None
               else encode_payload(bytes(tx) for tx in encoded_transactions))
    next_validators = (None if row.next_validators is None
                       else decode(bytes(row.next_validators), _CERT_LIMITS))
    value = [row.epoch, row.view, row.height, bytes(row.parent_hash), row.proposer_id,
             row.timestamp_ms, payload, bytes(row.tx_root), bytes(row.state_root),
             bytes(row.validator_set_hash), decode(bytes(row.justify_qc), _CERT_LIMITS),
             next_validators]
    return parse_block(value, DEFAULT_WIRE_LIMITS)


def load_block(height: int, *, using: str = "default") -> tuple[Block, QuorumCert] | None:
    """The committed block at ``height`` and its commit QC, rebuilt from the rows."""
    row = BlockRow.objects.using(using).filter(height=height).first()
    if row is None:
        return None
    encoded = (TransactionRow.objects.using(using).filter(block_height=height)
               .order_by("idx").values_list("payload", flat=True))
    return rebuild_block(row, [bytes(tx) for tx in encoded]), decode_qc(row.qc)
