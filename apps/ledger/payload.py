"""A block payload as the ledger stores it: the canonical CBOR array of encoded transactions.

This is the one place that turns payload bytes into transaction rows and back, and that
computes a block's ``tx_root`` (RFC 9162 tree hash over the transaction ids in block order).
:func:`describe_transaction` decodes each one with ``cybermesh.protocol.txs``.

A payload that is not exactly such an array is kept verbatim on the block row (see
``Block.payload``) so the block id stays recomputable; it then yields no transaction rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from apps.ledger.records import TxRecord
from apps.ledger.subjects import subject_of
from cybermesh.protocol.codec import CodecError, DecodeLimits, decode, encode
from cybermesh.protocol.crypto.hashing import sha256
from cybermesh.protocol.merkle.transparency import tree_hash
from cybermesh.protocol.txs.envelope import Transaction, decode_transaction
from cybermesh.protocol.txs.errors import TxRejected

# A payload is capped by consensus (max_block_bytes, 2 MiB by default); decoding allows a
# margin above that but stays bounded, as every input from outside must be.
PAYLOAD_LIMITS = DecodeLimits(max_bytes=16 << 20, max_depth=2, max_items=1 << 20)
OPAQUE_KIND = "opaque"


def record_of(index: int, transaction: Transaction) -> TxRecord:
    """The row of a decoded transaction at ``index`` of its block."""
    subject = subject_of(transaction)
    return TxRecord(index=index, tx_id=transaction.tx_id, kind=transaction.kind.value,
                    encoded=transaction.wire, content_hash=transaction.wire_hash,
                    producer_id=transaction.producer_id,
                    created_at_ms=transaction.created_at_ms, signature=transaction.signature,
                    public_key=transaction.public_key, offender_id=subject.offender_id,
                    severity=subject.severity)


def _describe(index: int, encoded: bytes) -> tuple[TxRecord, Transaction | None]:
    try:
        transaction = decode_transaction(encoded, verify=False)
    except TxRejected:
        digest = sha256(encoded)
        return TxRecord(index=index, tx_id=digest, kind=OPAQUE_KIND, encoded=encoded,
                        content_hash=digest), None
    return record_of(index, transaction), transaction


def describe_transaction(index: int, encoded: bytes) -> TxRecord:
    """The row of one transaction, from its wire bytes.

    A CyberMesh transaction (``cybermesh.protocol.txs``) gives its id (the hash of its signed
    body), kind, producer, creation time, signature and key. Anything else, which
    ``validate_payload`` keeps out of honest blocks, is stored as opaque bytes whose id and
    content hash are their SHA-256. Signatures are not re-checked here: replicas checked them
    before voting, and ``ledger verify`` checks them again.
    """
    return _describe(index, encoded)[0]


def _items(payload: bytes) -> list[bytes] | None:
    try:
        value = decode(payload, PAYLOAD_LIMITS)
    except CodecError:
        return None
    if type(value) is not list or any(type(item) is not bytes for item in value):
        return None
    return value  # type: ignore[return-value]


def decode_payload(payload: bytes) -> tuple[TxRecord, ...] | None:
    """The transactions of ``payload``, or ``None`` if it is not a canonical array of byte
    strings (such a payload is stored verbatim and contributes no transaction rows)."""
    items = _items(payload)
    if items is None:
        return None
    return tuple(describe_transaction(index, item) for index, item in enumerate(items))


def decode_payload_transactions(
    payload: bytes,
) -> tuple[tuple[TxRecord, ...], tuple[Transaction, ...]] | None:
    """Like :func:`decode_payload`, also returning the decoded transactions (those that are
    CyberMesh transactions, in block order) so a block is decoded once for execution and
    storage."""
    items = _items(payload)
    if items is None:
        return None
    described = [_describe(index, item) for index, item in enumerate(items)]
    return (tuple(record for record, _ in described),
            tuple(transaction for _, transaction in described if transaction is not None))


def encode_payload(encoded_transactions: Iterable[bytes]) -> bytes:
    """Inverse of :func:`decode_payload` for the rows of one block, in index order."""
    return encode(list(encoded_transactions))


def compute_tx_root(transactions: Sequence[TxRecord]) -> bytes:
    """RFC 9162 Merkle tree hash over the transaction ids in block order."""
    return tree_hash([record.tx_id for record in transactions])
