"""Reads for the ledger explorer and the validators page: verification status of a block or a
transaction recomputed from the stored rows, a keyset-paged transaction list, validator
health.

Verification never trusts a stored derived value: the block id is recomputed from every header
field and the transactions, the tx root from the transaction ids, the QC is decoded and must
name this block, the links to the parent are compared; with the genesis file configured
(``CLUSTER_TOPOLOGY``) the certificates' signatures and the state root are checked too, by the
same code as ``manage.py ledger verify``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings

from apps.ledger.models import Block as BlockRow
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.payload import compute_tx_root, decode_payload
from apps.ledger.rows import decode_qc, ms_to_datetime, rebuild_block
from apps.node.models import NodeStatus
from apps.state.queries import read_value
from apps.state.services import StateError, latest_version
from apps.validators.models import Validator
from cybermesh.protocol.block_builder import tx_inclusion_proof, verify_tx_inclusion
from cybermesh.protocol.codec import CodecError
from cybermesh.protocol.consensus.errors import MessageError
from cybermesh.protocol.executor.keys import PENDING_KEY, Subject, quarantine_key
from cybermesh.protocol.executor.records import (
    PendingChange,
    PendingRecord,
    QuarantineRecord,
    StateCorrupt,
    decode_record,
)
from cybermesh.protocol.txs.envelope import Transaction, decode_transaction
from cybermesh.protocol.txs.errors import TxRejected

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (and why, in detail)
    detail: str = ""


def _genesis() -> Any:
    topology = str(getattr(settings, "CLUSTER_TOPOLOGY", "") or "")
    if not topology:
        return None
    from cybermesh.protocol.genesis import GenesisError
    from cybermesh.topology import configured_genesis

    try:
        return configured_genesis(topology)
    except GenesisError:
        return None


def block_checks(row: BlockRow) -> list[Check]:
    """The verification status of one committed block, recomputed from the rows."""
    encoded = [bytes(tx) for tx in TransactionRow.objects.filter(block_height=row.height)
               .order_by("idx").values_list("payload", flat=True)]
    stored_hash = bytes(row.block_hash)
    try:
        block = rebuild_block(row, encoded)
        qc = decode_qc(row.qc)
    except (MessageError, CodecError, TypeError, ValueError) as error:
        return [Check("block rows decode", False, str(error))]
    checks = [Check("block id recomputed from the header and transactions",
                    block.block_id == stored_hash, f"recomputed {block.block_id.hex()}")]
    records = decode_payload(block.payload)
    if records is not None:
        root = compute_tx_root(records)
        checks.append(Check("tx root (RFC 9162 over the tx ids)", root == bytes(row.tx_root),
                            f"recomputed {root.hex()} over {len(records)} transactions"))
    checks.append(Check("commit QC names this block",
                        qc.block_id == stored_hash and qc.height == row.height,
                        f"{len(qc.signatures)} signature(s), view {qc.view}"))
    parent = BlockRow.objects.filter(height=row.height - 1).only(
        "block_hash", "result_state_root").first()
    if parent is not None:
        checks.append(Check("parent link", bytes(parent.block_hash) == bytes(row.parent_hash),
                            f"block {row.height - 1}"))
        checks.append(Check("state link (header root = parent's result root)",
                            bytes(parent.result_state_root) == bytes(row.state_root)))
    genesis = _genesis()
    if genesis is None:
        checks.append(Check("certificates and state root", None,
                            "not checked: no genesis file (CLUSTER_TOPOLOGY) to trust"))
        return checks
    from apps.ledger.verification import verify_ledger

    report = verify_ledger(chain_id=genesis.chain_id, genesis_set=genesis.validator_set,
                           from_height=row.height, to_height=row.height)
    problems = [f"{p.reason.value}: {p.detail}" for p in report.problems]
    checks.append(Check("certificates (quorum of valid signatures) and state root recomputed",
                        not problems, "; ".join(problems) or
                        f"against the genesis validator set of {genesis.chain_id}"))
    return checks


@dataclass(frozen=True, slots=True)
class TransactionView:
    row: TransactionRow
    transaction: Transaction | None
    checks: list[Check]
    payload: Any
    block_time: datetime | None


def _plain(value: Any) -> Any:
    import dataclasses
    import enum

    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _plain(getattr(value, item.name))
                for item in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def transaction_view(tx_id: bytes) -> TransactionView | None:
    """A committed transaction decoded, with its signature and inclusion re-checked."""
    row = TransactionRow.objects.filter(tx_id=tx_id, is_replay=False).first()
    if row is None:
        return None
    wire = bytes(row.payload)
    checks = []
    transaction = None
    try:
        transaction = decode_transaction(wire, verify=True)
        checks.append(Check("schema and Ed25519 signature", True, transaction.kind.value))
        checks.append(Check("tx id = SHA-256(domain || signed body)",
                            transaction.tx_id == tx_id))
    except TxRejected as error:
        checks.append(Check("schema and Ed25519 signature", False, str(error)))
    block = BlockRow.objects.filter(height=row.block_height).only("tx_root", "timestamp_ms").first()
    ids = [bytes(value) for value in TransactionRow.objects.filter(
        block_height=row.block_height).order_by("idx").values_list("tx_id", flat=True)]
    if block is not None:
        path = tx_inclusion_proof(ids, row.idx)
        included = verify_tx_inclusion(tx_id, row.idx, len(ids), path, bytes(block.tx_root))
        checks.append(Check("inclusion proof against the block's tx root", included,
                            f"entry {row.idx} of {len(ids)}, {len(path)} hashes"))
    return TransactionView(
        row=row, transaction=transaction, checks=checks,
        payload=_plain(transaction.payload) if transaction is not None else None,
        block_time=ms_to_datetime(block.timestamp_ms) if block is not None else None)


def transactions_page(*, kind: str = "", producer: str = "",
                      before: tuple[int, int] | None = None,
                      limit: int = 50) -> list[TransactionRow]:
    """Newest first, keyset-paged below ``before`` = (height, idx): each page is one index
    range scan ((kind | producer_id, block_height, idx) or the primary key)."""
    rows = TransactionRow.objects.all()
    if kind:
        rows = rows.filter(kind=kind)
    if producer:
        rows = rows.filter(producer_id=producer)
    if before is not None:
        height, index = before
        from django.db.models import Q

        rows = rows.filter(Q(block_height__lt=height) | Q(block_height=height, idx__lt=index))
    return list(rows.order_by("-block_height", "-idx")
                .only("block_height", "idx", "tx_id", "kind", "producer_id", "created_at",
                      "is_replay")[:max(1, min(limit, MAX_PAGE))])


# --- validators ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ValidatorHealth:
    validator_id: str
    is_self: bool
    connected: bool | None
    peer_score: float | None
    last_seen: datetime | None
    quarantined_until: datetime | None
    quarantine_reason: str = ""


@dataclass(frozen=True, slots=True)
class ClusterView:
    node: NodeStatus | None
    health: dict[str, ValidatorHealth] = field(default_factory=dict)
    pending: tuple[PendingChange, ...] = ()
    state_version: int | None = None


def _quarantine(validator_id: str, version: int | None) -> QuarantineRecord | None:
    if version is None:
        return None
    try:
        raw = read_value(quarantine_key(Subject.validator(validator_id)), version)
        record = decode_record(raw) if raw is not None else None
    except (StateError, StateCorrupt):
        return None
    return record if isinstance(record, QuarantineRecord) else None


def cluster_view(validator_ids: list[str]) -> ClusterView:
    """This node's status, each validator's health as this node sees it (its peer links),
    its quarantine in the latest state, and the pending governance changes."""
    node = NodeStatus.objects.filter(node_id=settings.NODE_ID).first()
    peers = {str(peer.get("id")): peer for peer in (node.peers if node else [])
             if isinstance(peer, dict)}
    version = latest_version()
    tip_ms = (BlockRow.objects.filter(height=version).values_list("timestamp_ms", flat=True)
              .first() if version is not None else None)
    health = {}
    for validator_id in validator_ids:
        peer = peers.get(validator_id)
        is_self = node is not None and validator_id == node.node_id
        quarantine = _quarantine(validator_id, version)
        active = quarantine is not None and tip_ms is not None and \
            quarantine.expires_at_ms > tip_ms
        health[validator_id] = ValidatorHealth(
            validator_id=validator_id, is_self=is_self,
            connected=True if is_self else (bool(peer.get("connected")) if peer else None),
            peer_score=float(peer["score"]) if peer and "score" in peer else None,
            last_seen=node.updated_at if node and (is_self or (peer and peer.get("connected")))
            else None,
            quarantined_until=ms_to_datetime(quarantine.expires_at_ms) if active and quarantine
            else None,
            quarantine_reason=quarantine.reason.value if active and quarantine else "")
    pending: tuple[PendingChange, ...] = ()
    if version is not None:
        try:
            raw = read_value(PENDING_KEY, version)
            record = decode_record(raw) if raw is not None else None
            if isinstance(record, PendingRecord):
                pending = record.changes
        except (StateError, StateCorrupt):
            pending = ()
    return ClusterView(node=node, health=health, pending=pending, state_version=version)


def validator_ids() -> list[str]:
    return list(Validator.objects.order_by("validator_id").values_list("validator_id",
                                                                         flat=True)[:500])
