"""Deterministic block payloads: which transactions a leader proposes, and in what order.

A block's payload is the canonical CBOR array of the wire bytes of its transactions. The leader
picks them from its mempool with :func:`build_payload`; every replica checks the proposal with
:func:`validate_payload`, which applies the same rules, so an honest leader's payload is always
accepted and a payload out of order, over a limit, with a duplicate or an undecodable or
unsigned transaction is always refused.

Order. Every transaction has an integer *priority key* computed from its bytes alone
(:func:`priority_key`): ``weight * WEIGHT_UNIT_MS - created_at_ms``. Its priority at time ``T``
is ``key + T = weight * WEIGHT_UNIT_MS + age(T)``: one weight point is worth one second of
waiting, so heavier transactions go first and, at equal weight, older ones do. Because the age
term grows equally for every transaction, the order by key never changes with time, which is
what lets the mempool keep the key in an index and replicas check the order without a clock.
The payload lists transactions by key descending, then by transaction id ascending.

Weight (:func:`tx_weight`) comes from the transaction kind and content: governance and
validator-equivocation evidence first (they change who decides), then analyst policy and audit
anchors, then artifact evidence (more artifacts and supported events weigh more), then security
events by severity and confidence. A producer can raise its own transaction's priority only by
back-dating ``created_at_ms``, and admission refuses anything older than its replay window, so
back-dating buys at most that window.

Limits (:class:`BlockLimits`): at most ``max_txs`` transactions and ``max_bytes`` bytes of
payload (genesis consensus parameters), and every transaction created no more than
``max_tx_age_ms`` before and no more than ``max_future_ms`` after the block's agreed timestamp
(the executor parameters ``tx_max_age_ms`` / ``tx_max_future_ms``, changed only by governance).

The tx root is the RFC 9162 Merkle tree hash over the transaction ids in payload order, so a
standard transparency-log verifier checks :func:`tx_inclusion_proof` output.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cybermesh.protocol.codec import CodecError, CodecErrorReason, DecodeLimits, decode
from cybermesh.protocol.executor.params import ExecutorParameters
from cybermesh.protocol.genesis import ConsensusParameters
from cybermesh.protocol.merkle.transparency import inclusion_proof, tree_hash, verify_inclusion
from cybermesh.protocol.txs.audit_anchor import AuditAnchor
from cybermesh.protocol.txs.envelope import Transaction, decode_transaction
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.evidence import Evidence, EvidenceKind
from cybermesh.protocol.txs.governance import GovernanceChange
from cybermesh.protocol.txs.policy import PolicyChange
from cybermesh.protocol.txs.security_event import MAX_CONFIDENCE_BPS, SecurityEvent
from cybermesh.protocol.txs.signature_memory import SIGNATURES, SignatureMemory

__all__ = [
    "WEIGHT_UNIT_MS",
    "BlockLimits",
    "BuiltPayload",
    "Candidate",
    "PayloadRejectReason",
    "PayloadRejected",
    "ValidatedPayload",
    "build_payload",
    "payload_size",
    "priority_key",
    "tx_inclusion_proof",
    "tx_root",
    "tx_weight",
    "validate_payload",
    "verify_tx_inclusion",
]

WEIGHT_UNIT_MS = 1000
"""One weight point is worth this many milliseconds of waiting in the mempool."""

# Weights. Governance and equivocation proofs change the validator set or punish a Byzantine
# validator: they must not starve behind a flood of alerts. Security events span 100..1099.
GOVERNANCE_WEIGHT = 3000
EQUIVOCATION_WEIGHT = 2500
POLICY_WEIGHT = 1500
AUDIT_ANCHOR_WEIGHT = 1200
EVIDENCE_BASE_WEIGHT = 500
EVIDENCE_ITEM_WEIGHT = 20
EVIDENCE_MAX_ITEMS = 25
SEVERITY_WEIGHT = 100


def tx_weight(transaction: Transaction) -> int:
    """The integer weight of a transaction: its kind, severity and evidence weight."""
    payload = transaction.payload
    if isinstance(payload, SecurityEvent):
        # Confidence refines within one severity step (0..99), never across it.
        return (payload.severity * SEVERITY_WEIGHT
                + payload.confidence_bps * (SEVERITY_WEIGHT - 1) // MAX_CONFIDENCE_BPS)
    if isinstance(payload, Evidence):
        if payload.kind is EvidenceKind.EQUIVOCATION:
            return EQUIVOCATION_WEIGHT
        items = min(len(payload.artifacts) + len(payload.supports), EVIDENCE_MAX_ITEMS)
        return EVIDENCE_BASE_WEIGHT + EVIDENCE_ITEM_WEIGHT * items
    if isinstance(payload, GovernanceChange):
        return GOVERNANCE_WEIGHT
    if isinstance(payload, PolicyChange):
        return POLICY_WEIGHT
    if isinstance(payload, AuditAnchor):
        return AUDIT_ANCHOR_WEIGHT
    raise TypeError(f"no weight for {type(payload).__name__}")  # pragma: no cover


def priority_key(transaction: Transaction) -> int:
    """The time-independent priority key: ``weight * WEIGHT_UNIT_MS - created_at_ms``.

    Larger is earlier in a block. The priority at time ``T`` is ``key + T``.
    """
    return tx_weight(transaction) * WEIGHT_UNIT_MS - transaction.created_at_ms


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """Per-block limits, fixed at genesis so that every validator applies the same ones."""

    max_txs: int
    max_bytes: int
    max_tx_age_ms: int
    max_future_ms: int

    def __post_init__(self) -> None:
        for name in ("max_txs", "max_bytes", "max_tx_age_ms", "max_future_ms"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise ValueError(f"BlockLimits.{name} must be a non-negative int")

    @classmethod
    def from_parameters(cls, consensus: ConsensusParameters,
                        executor: ExecutorParameters) -> BlockLimits:
        """Count and bytes from the genesis consensus parameters; the age window from the
        executor parameters in force (so a block never carries a transaction the executor
        would ignore as stale or from the future)."""
        return cls(max_txs=consensus.max_block_txs, max_bytes=consensus.max_block_bytes,
                   max_tx_age_ms=executor.tx_max_age_ms,
                   max_future_ms=executor.tx_max_future_ms)

    def admits_age(self, created_at_ms: int, block_time_ms: int) -> bool:
        """Whether a transaction created at ``created_at_ms`` may be in a block at that time."""
        return (block_time_ms - self.max_tx_age_ms <= created_at_ms
                <= block_time_ms + self.max_future_ms)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A mempool transaction offered to the builder: its id, wire bytes and priority key.

    ``priority`` must be :func:`priority_key` of the decoded transaction (the mempool stores
    it at admission); :meth:`from_transaction` computes it.
    """

    tx_id: bytes
    wire: bytes
    priority: int
    created_at_ms: int

    @classmethod
    def from_transaction(cls, transaction: Transaction) -> Candidate:
        return cls(tx_id=transaction.tx_id, wire=transaction.wire,
                   priority=priority_key(transaction), created_at_ms=transaction.created_at_ms)


def _head_size(length: int) -> int:
    """Bytes of a canonical CBOR head for an argument of ``length``."""
    if length < 24:
        return 1
    if length < 0x100:
        return 2
    if length < 0x10000:
        return 3
    if length < 0x100000000:
        return 5
    return 9


def payload_size(wires: Sequence[bytes]) -> int:
    """Size of ``encode(list(wires))`` without encoding it."""
    return _head_size(len(wires)) + sum(_head_size(len(wire)) + len(wire) for wire in wires)


def _encode_payload(wires: Sequence[bytes]) -> bytes:
    # Byte-identical to codec.encode(list(wires)); done by hand to avoid a copy per item and
    # checked against the codec in the tests.
    parts = [_head_bytes(4, len(wires))]
    for wire in wires:
        parts.append(_head_bytes(2, len(wire)))
        parts.append(wire)
    return b"".join(parts)


def _head_bytes(major: int, argument: int) -> bytes:
    size = _head_size(argument)
    if size == 1:
        return bytes(((major << 5) | argument,))
    extra = {2: 24, 3: 25, 5: 26, 9: 27}[size]
    return bytes(((major << 5) | extra,)) + argument.to_bytes(size - 1, "big")


def tx_root(tx_ids: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash over the transaction ids in block order."""
    return tree_hash(tx_ids)


def tx_inclusion_proof(tx_ids: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 audit path of the transaction at ``index``."""
    return inclusion_proof(tx_ids, index)


def verify_tx_inclusion(tx_id: bytes, index: int, tx_count: int, proof: Sequence[bytes],
                        root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: is ``tx_id`` entry ``index`` of the block with ``root``?"""
    return verify_inclusion(tx_id, index, tx_count, proof, root)


@dataclass(frozen=True, slots=True)
class BuiltPayload:
    """A leader's payload: the bytes to propose, the ids in order and their tx root."""

    payload: bytes
    tx_ids: tuple[bytes, ...]
    tx_root: bytes

    @property
    def tx_count(self) -> int:
        return len(self.tx_ids)


def _order_key(candidate: Candidate) -> tuple[int, bytes]:
    return (-candidate.priority, candidate.tx_id)


def build_payload(candidates: Iterable[Candidate], *, limits: BlockLimits,
                  block_time_ms: int) -> BuiltPayload:
    """Select and order transactions for a block at ``block_time_ms``.

    Candidates whose age is outside the limits are skipped; the rest are taken greedily in
    canonical order (priority key descending, tx id ascending), skipping any that would push
    the payload over ``max_bytes`` and stopping at ``max_txs``. A repeated tx id is taken
    once. The result depends only on the set of candidates, the limits and the time.
    """
    eligible = sorted((candidate for candidate in candidates
                       if limits.admits_age(candidate.created_at_ms, block_time_ms)),
                      key=_order_key)
    chosen: list[Candidate] = []
    items_size = 0
    previous_id: bytes | None = None
    for candidate in eligible:
        if len(chosen) >= limits.max_txs:
            break
        if candidate.tx_id == previous_id:
            continue
        item_size = _head_size(len(candidate.wire)) + len(candidate.wire)
        if _head_size(len(chosen) + 1) + items_size + item_size > limits.max_bytes:
            continue
        chosen.append(candidate)
        items_size += item_size
        previous_id = candidate.tx_id
    tx_ids = tuple(candidate.tx_id for candidate in chosen)
    return BuiltPayload(payload=_encode_payload([candidate.wire for candidate in chosen]),
                        tx_ids=tx_ids, tx_root=tx_root(tx_ids))


class PayloadRejectReason(enum.Enum):
    """Why a replica refuses a proposed payload; stable names for metrics and tests."""

    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    TOO_MANY_TXS = "too_many_txs"
    BAD_TRANSACTION = "bad_transaction"
    DUPLICATE_TX = "duplicate_tx"
    TX_TOO_OLD = "tx_too_old"
    TX_FROM_FUTURE = "tx_from_future"
    NOT_CANONICAL_ORDER = "not_canonical_order"
    BAD_SIGNATURE = "bad_signature"


class PayloadRejected(ValueError):
    """A refused payload; ``index`` is the offending transaction's position, if any."""

    reason: PayloadRejectReason
    detail: str
    index: int | None

    def __init__(self, reason: PayloadRejectReason, detail: str, index: int | None = None
                 ) -> None:
        self.reason = reason
        self.detail = detail
        self.index = index
        where = "" if index is None else f" (transaction {index})"
        super().__init__(f"{reason.value}{where}: {detail}")


@dataclass(frozen=True, slots=True)
class ValidatedPayload:
    """A payload that passed :func:`validate_payload`, decoded."""

    transactions: tuple[Transaction, ...]
    tx_ids: tuple[bytes, ...]
    tx_root: bytes


def _decode_items(payload: bytes, limits: BlockLimits) -> list[bytes]:
    if type(payload) is not bytes:
        raise PayloadRejected(PayloadRejectReason.MALFORMED, "payload must be bytes")
    if len(payload) > limits.max_bytes:
        raise PayloadRejected(PayloadRejectReason.TOO_LARGE,
                              f"{len(payload)} bytes exceed max_bytes {limits.max_bytes}")
    try:
        value = decode(payload, DecodeLimits(max_bytes=max(limits.max_bytes, 1), max_depth=1,
                                             max_items=limits.max_txs))
    except CodecError as error:
        if error.reason is CodecErrorReason.TOO_MANY_ITEMS:
            raise PayloadRejected(PayloadRejectReason.TOO_MANY_TXS,
                                  f"more than {limits.max_txs} transactions") from None
        raise PayloadRejected(PayloadRejectReason.MALFORMED, str(error)) from None
    if type(value) is not list or any(type(item) is not bytes for item in value):
        raise PayloadRejected(PayloadRejectReason.MALFORMED,
                              "payload must be an array of byte strings")
    return value  # type: ignore[return-value]  # every item checked to be bytes just above


def validate_payload(payload: bytes, *, limits: BlockLimits, block_time_ms: int,
                     chain_id: str, verify_signatures: bool = True,
                     signatures: SignatureMemory | None = None) -> ValidatedPayload:
    """Check a proposed payload the way :func:`build_payload` makes one; raise
    :class:`PayloadRejected` at the first violation.

    Checks, cheapest first: total size, canonical array of byte strings, transaction count,
    every transaction decodes strictly for this chain, no repeated id, every age within the
    limits, canonical order, then (one batch) every signature. Producer authorisation is
    node-local configuration and deliberately not a validity rule here.

    The result carries the decoded transactions, so the caller executes them without decoding
    the payload again (``apps.state.execution.execute_block(transactions=...)``). Signatures
    verified before in this process are not verified again (``signatures``, by default the
    process-wide :data:`~cybermesh.protocol.txs.signature_memory.SIGNATURES`): a remembered
    success is keyed by content, so skipping it cannot change the outcome.
    """
    items = _decode_items(payload, limits)
    transactions: list[Transaction] = []
    for index, item in enumerate(items):
        try:
            transactions.append(decode_transaction(item, expected_chain_id=chain_id,
                                                   verify=False))
        except TxRejected as error:
            raise PayloadRejected(PayloadRejectReason.BAD_TRANSACTION, str(error),
                                  index) from None
    seen: set[bytes] = set()
    for index, transaction in enumerate(transactions):
        if transaction.tx_id in seen:
            raise PayloadRejected(PayloadRejectReason.DUPLICATE_TX,
                                  f"tx {transaction.tx_id.hex()} appears twice", index)
        seen.add(transaction.tx_id)
    for index, transaction in enumerate(transactions):
        if transaction.created_at_ms < block_time_ms - limits.max_tx_age_ms:
            raise PayloadRejected(PayloadRejectReason.TX_TOO_OLD,
                                  f"created more than {limits.max_tx_age_ms} ms before the "
                                  "block", index)
        if transaction.created_at_ms > block_time_ms + limits.max_future_ms:
            raise PayloadRejected(PayloadRejectReason.TX_FROM_FUTURE,
                                  f"created more than {limits.max_future_ms} ms after the "
                                  "block", index)
    keys = [(-priority_key(transaction), transaction.tx_id) for transaction in transactions]
    for index in range(1, len(keys)):
        if not keys[index - 1] < keys[index]:
            raise PayloadRejected(PayloadRejectReason.NOT_CANONICAL_ORDER,
                                  "transactions must be in priority-descending, "
                                  "tx-id-ascending order", index)
    if verify_signatures and transactions:
        failed = (SIGNATURES if signatures is None else signatures).failed(transactions)
        if failed:
            raise PayloadRejected(PayloadRejectReason.BAD_SIGNATURE,
                                  "signature does not verify", failed[0])
    tx_ids = tuple(transaction.tx_id for transaction in transactions)
    return ValidatedPayload(transactions=tuple(transactions), tx_ids=tx_ids,
                            tx_root=tx_root(tx_ids))
