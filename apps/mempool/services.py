"""Writes to the mempool after admission: removal of committed transactions, expiry.

Each service comes in two forms. ``remove_committed`` / ``expire`` run their own serializable
transaction (retried on conflict). ``remove_committed_in_transaction`` joins the caller's
transaction, so the ledger can drop a block's transactions from the mempool in the same
atomic commit that writes the block: a crash leaves either both or neither.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from functools import reduce

from django.db import transaction
from django.db.models import Q, Sum

from apps.mempool import metrics
from apps.mempool.admission import (
    MempoolConfig,
    adjust_pool_stats,
    default_pipeline,
    delete_expired_rows,
    pool_stats_for_update,
)
from apps.mempool.models import MempoolTransaction, PendingDeadLetter, ProducerNonce
from cybermesh.db import run_serializable

__all__ = [
    "ExpiryResult",
    "expire",
    "forget_dead_letters",
    "remove_committed",
    "remove_committed_in_transaction",
]

MAX_REMOVE_BATCH = 10_000


def remove_committed_in_transaction(tx_ids: Iterable[bytes]) -> int:
    """Delete these transactions from the mempool inside the caller's transaction; return how
    many were there. Ids not in the mempool are ignored (another node's transactions, or a
    second call for the same block)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("remove_committed_in_transaction needs an open transaction; "
                           "use remove_committed")
    ids = list(dict.fromkeys(bytes(tx_id) for tx_id in tx_ids))
    removed = 0
    removed_bytes = 0
    for start in range(0, len(ids), MAX_REMOVE_BATCH):
        rows = MempoolTransaction.objects.filter(tx_id__in=ids[start:start + MAX_REMOVE_BATCH])
        chunk_bytes = rows.aggregate(total=Sum("size_bytes"))["total"] or 0
        count, _ = rows.delete()
        removed += count
        removed_bytes += chunk_bytes
    if removed:
        pool_stats_for_update()
        adjust_pool_stats(-removed, -removed_bytes)
        transaction.on_commit(lambda: metrics.REMOVED_COMMITTED.inc(removed))
    return removed


def remove_committed(tx_ids: Iterable[bytes]) -> int:
    """Delete committed transactions from the mempool in one serializable transaction."""
    ids = list(tx_ids)
    return run_serializable(lambda: remove_committed_in_transaction(ids),
                            operation="mempool.remove_committed")


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    expired: int
    nonces_pruned: int


def expire(now_ms: int, *, config: MempoolConfig | None = None) -> ExpiryResult:
    """Delete transactions whose TTL has passed at ``now_ms``, and nonce records older than
    the replay window (anything that old is refused as stale before nonces are read)."""
    window_ms = (config or default_pipeline().config).replay_window_ms

    def run() -> ExpiryResult:
        pool_stats_for_update()
        expired, expired_bytes = delete_expired_rows(now_ms)
        adjust_pool_stats(-expired, -expired_bytes)
        pruned, _ = ProducerNonce.objects.filter(
            created_at_ms__lt=now_ms - window_ms).delete()
        return ExpiryResult(expired=expired, nonces_pruned=pruned)

    result = run_serializable(run, operation="mempool.expire")
    if result.expired:
        metrics.EXPIRED.inc(result.expired)
    return result


def forget_dead_letters(letters: Iterable[tuple[bytes, int]]) -> int:
    """Drop pending dead letters the DLQ acknowledged, given as (tx id, removed at ms); return
    how many rows went. Call only after the broker's acknowledgement: until then the row is
    the event's only copy. A row removed again meanwhile (a newer ``removed_at_ms``) stays."""
    wanted = list(dict.fromkeys((bytes(tx_id), removed_at_ms)
                                for tx_id, removed_at_ms in letters))
    if not wanted:
        return 0
    match = reduce(operator.or_, (Q(tx_id=tx_id, removed_at_ms=removed_at_ms)
                                  for tx_id, removed_at_ms in wanted))

    def run() -> int:
        return PendingDeadLetter.objects.filter(match).delete()[0]

    return run_serializable(run, operation="mempool.forget_dead_letters")
