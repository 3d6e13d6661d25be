"""Reads behind the API. Each one is an index probe or an index range scan of bounded length.

* blocks: primary key ``height``; by hash through the unique index on ``hash``;
* transactions: primary key ``(block_height, idx)``; by id through ``transactions_tx_id_idx``;
* evidence: primary key ``evidence_id``; by offender through ``evidence_offender_idx``;
* validators: the ``validators_active_idx`` index (a few dozen rows at most);
* node status: primary key ``node_id``.

List querysets are ordered and sliced by :mod:`apps.api.pagination` (keyset, newest first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import QuerySet
from django.utils import timezone

from apps.evidence.models import Evidence
from apps.ledger.models import Block as BlockRow
from apps.ledger.models import Transaction as TransactionRow
from apps.ledger.rows import rebuild_block
from apps.node.models import NodeStatus
from apps.validators.models import Validator
from cybermesh.protocol.consensus.messages import Block
from cybermesh.protocol.validator_set import QuorumMath, quorum_math

_HASH = re.compile(r"^[0-9a-fA-F]{64}$")
_HEIGHT = re.compile(r"^[0-9]{1,18}$")
# Columns of a block list item (the payload and certificates' raw bytes stay in the table).
_BLOCK_LIST_FIELDS = ("height", "block_hash", "parent_hash", "epoch", "view", "proposer_id",
                      "timestamp_ms", "tx_count", "tx_root", "state_root", "result_state_root",
                      "validator_set_hash", "committed_at", "qc")
_TRANSACTION_LIST_FIELDS = ("block_height", "idx", "tx_id", "kind", "producer_id",
                            "offender_id", "severity", "created_at", "content_hash",
                            "is_replay")
_EVIDENCE_LIST_FIELDS = ("evidence_id", "kind", "offender_id", "epoch", "view", "height",
                         "reporter_id", "status", "committed_height", "created_at")
DEFAULT_READY_MAX_AGE_SECONDS = 30


class BadIdentifier(ValueError):
    """An identifier in a URL that is neither of the accepted forms."""


def parse_block_identifier(identifier: str) -> tuple[str, Any]:
    """``"123"`` -> ("height", 123); 64 hex characters -> ("hash", bytes)."""
    if _HEIGHT.match(identifier):
        return "height", int(identifier)
    if _HASH.match(identifier):
        return "hash", bytes.fromhex(identifier)
    raise BadIdentifier("A block is named by its height (digits) or hash (64 hex characters).")


def parse_hash(identifier: str, what: str) -> bytes:
    if not _HASH.match(identifier):
        raise BadIdentifier(f"A {what} id is 64 hex characters.")
    return bytes.fromhex(identifier)


# The list endpoints read plain rows (dicts of the item's columns): building 50 model
# instances per page cost about as much as the query's own round trip.
RowQuerySet = QuerySet[Any, dict[str, Any]]


def block_rows() -> RowQuerySet:
    rows: RowQuerySet = BlockRow.objects.values(*_BLOCK_LIST_FIELDS)
    return rows


def transaction_rows() -> RowQuerySet:
    rows: RowQuerySet = TransactionRow.objects.values(*_TRANSACTION_LIST_FIELDS)
    return rows


def evidence_rows() -> RowQuerySet:
    rows: RowQuerySet = Evidence.objects.values(*_EVIDENCE_LIST_FIELDS)
    return rows


def find_block(identifier: str) -> BlockRow | None:
    kind, value = parse_block_identifier(identifier)
    rows = BlockRow.objects.filter(**{"height" if kind == "height" else "block_hash": value})
    # No ORDER BY: the lookup is by a unique key (ordering would invite a primary-key walk).
    found = list(rows.order_by()[:1])
    return found[0] if found else None


def committed_block(row: BlockRow) -> Block:
    """The block a stored row holds, rebuilt with its transactions (one index range scan over
    them, none when the row keeps its payload verbatim). The row is the caller's: reading it
    again by height would cost a second round trip."""
    encoded: list[bytes] = []
    if row.payload is None:
        encoded = [bytes(tx) for tx in TransactionRow.objects.filter(block_height=row.height)
                   .order_by("idx").values_list("payload", flat=True)]
    return rebuild_block(row, encoded)


def latest_block_row() -> dict[str, Any] | None:
    """The latest block as a plain row (see :func:`block_rows`)."""
    found: dict[str, Any] | None = block_rows().order_by("-height").first()
    return found


def _timestamp_at(height: int) -> int | None:
    found = list(BlockRow.objects.filter(height=height).order_by()
                 .values_list("timestamp_ms", flat=True)[:1])
    return int(found[0]) if found else None


def first_height_at_or_after(timestamp_ms: int) -> int:
    """The lowest committed height whose block time is >= ``timestamp_ms`` (the tip + 1 when
    none is). Consensus makes block times strictly increase with height, so this is a binary
    search of about log2(height) primary-key probes: no index on time is needed."""
    bounds = BlockRow.objects.order_by("height").values_list("height", flat=True)
    low, high = bounds.first(), bounds.last()
    if low is None or high is None:
        return 0
    high += 1  # answer in [low, high]; high means "after the tip"
    while low < high:
        middle = (low + high) // 2
        stamp = _timestamp_at(middle)
        if stamp is not None and stamp >= timestamp_ms:
            high = middle
        else:
            low = middle + 1
    return low


def find_transaction(tx_id: bytes) -> TransactionRow | None:
    """The committed transaction with this id: its first occurrence (later copies a Byzantine
    leader replayed are stored with ``is_replay`` and never without a first one). Served by
    the partial unique index on ``tx_id`` of non-replays."""
    rows = list(TransactionRow.objects.filter(tx_id=tx_id, is_replay=False).order_by()[:1])
    return rows[0] if rows else None


def find_evidence(evidence_id: bytes) -> Evidence | None:
    return Evidence.objects.filter(evidence_id=evidence_id).first()


def active_validators() -> list[Validator]:
    return list(Validator.objects.filter(active=True).order_by("validator_id"))


def active_quorum(validators: list[Validator]) -> QuorumMath | None:
    total = sum(validator.power for validator in validators)
    return quorum_math(total) if total > 0 else None


def node_status(node_id: str | None = None) -> NodeStatus | None:
    return NodeStatus.objects.filter(node_id=node_id or settings.NODE_ID).first()


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # check -> "ok" or why not


def readiness(*, max_age: timedelta | None = None) -> Readiness:
    """Ready when the database answers and this node's status says synced, recently."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
        return Readiness(False, checks)
    checks["database"] = "ok"
    status = node_status()
    age_limit = max_age or timedelta(seconds=int(getattr(
        settings, "READY_MAX_STATUS_AGE_SECONDS", DEFAULT_READY_MAX_AGE_SECONDS)))
    if status is None:
        checks["synced"] = "no status recorded for this node yet"
    elif not status.synced:
        checks["synced"] = f"not synced (height {status.height})"
    elif timezone.now() - status.updated_at > age_limit:
        checks["synced"] = (f"status is stale (last update {status.updated_at.isoformat()}, "
                            f"limit {int(age_limit.total_seconds())} s)")
    else:
        checks["synced"] = "ok"
    return Readiness(all(value == "ok" for value in checks.values()), checks)
