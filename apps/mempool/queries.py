"""Reads of the mempool: block candidates, the proposed payload, the pool size."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Sum

from apps.mempool.models import MempoolTransaction, PendingDeadLetter
from cybermesh.protocol.block_builder import BlockLimits, BuiltPayload, Candidate, build_payload

__all__ = ["PoolSize", "block_candidates", "pending_dead_letter_count",
           "pending_dead_letters", "pool_size",
           "propose_payload"]

# Extra rows read beyond max_txs, so that transactions skipped for size can be replaced by
# smaller ones further down the order.
CANDIDATE_SLACK = 256


def block_candidates(*, block_time_ms: int, limits: BlockLimits) -> list[Candidate]:
    """Unexpired transactions a block at ``block_time_ms`` may carry, best first.

    Reads at most ``max_txs + CANDIDATE_SLACK`` rows and stops once twice ``max_bytes`` of
    wire bytes were read: enough for the builder to fill a block, bounded in memory.
    """
    rows = (MempoolTransaction.objects
            .filter(expires_at_ms__gt=block_time_ms,
                    created_at_ms__gte=block_time_ms - limits.max_tx_age_ms,
                    created_at_ms__lte=block_time_ms + limits.max_future_ms)
            .order_by("-priority", "tx_id")
            .values_list("tx_id", "wire", "priority", "created_at_ms"))
    candidates: list[Candidate] = []
    read_bytes = 0
    for tx_id, wire, priority, created_at_ms in rows[:limits.max_txs + CANDIDATE_SLACK]:
        candidates.append(Candidate(tx_id=bytes(tx_id), wire=bytes(wire), priority=priority,
                                    created_at_ms=created_at_ms))
        read_bytes += len(wire)
        if read_bytes > 2 * limits.max_bytes:
            break
    return candidates


def propose_payload(*, block_time_ms: int, limits: BlockLimits) -> BuiltPayload:
    """The payload this node would propose for a block at ``block_time_ms``."""
    return build_payload(block_candidates(block_time_ms=block_time_ms, limits=limits),
                         limits=limits, block_time_ms=block_time_ms)


@dataclass(frozen=True, slots=True)
class PoolSize:
    tx_count: int
    total_bytes: int


def pool_size() -> PoolSize:
    """Count the pool from its rows (the admission counter row is checked against this)."""
    totals = MempoolTransaction.objects.aggregate(count=Count("tx_id"), total=Sum("size_bytes"))
    return PoolSize(tx_count=totals["count"] or 0, total_bytes=totals["total"] or 0)


def pending_dead_letters(*, limit: int) -> list[PendingDeadLetter]:
    """The oldest ``limit`` transactions that left the pool without a block and are not yet
    acknowledged by a DLQ topic."""
    return list(PendingDeadLetter.objects.order_by("removed_at_ms", "tx_id")[:limit])


def pending_dead_letter_count() -> int:
    return PendingDeadLetter.objects.count()
