"""Prometheus metrics of the mempool (counted once per admission call that completed).

A call that raised (a transient database failure the caller will retry) counts nothing, so
a retried batch is not counted twice.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ADMITTED",
    "ADMIT_BATCH_SECONDS",
    "DUPLICATES",
    "EVICTED",
    "EXPIRED",
    "POOL_TXS",
    "REJECTIONS",
    "REMOVED_COMMITTED",
    "SCHEMA_REJECTIONS",
]

REJECTIONS = Counter(
    "cybermesh_mempool_rejections",
    "Transactions refused by the admission pipeline, by reason (the first step that failed).",
    ["reason"],
)
SCHEMA_REJECTIONS = Counter(
    "cybermesh_mempool_schema_rejections",
    "Transactions refused at the size/version or schema step, by the transaction layer's "
    "own reason.",
    ["tx_reason"],
)
ADMITTED = Counter(
    "cybermesh_mempool_admitted",
    "Transactions admitted into the mempool, by kind.",
    ["kind"],
)
DUPLICATES = Counter(
    "cybermesh_mempool_duplicates",
    "Transactions already in the mempool or the ledger (an idempotent re-delivery).",
)
EVICTED = Counter(
    "cybermesh_mempool_evicted",
    "Transactions evicted from a full mempool by a higher-priority one.",
)
EXPIRED = Counter(
    "cybermesh_mempool_expired",
    "Transactions removed from the mempool because their TTL passed.",
)
REMOVED_COMMITTED = Counter(
    "cybermesh_mempool_removed_committed",
    "Transactions removed from the mempool because a committed block carried them.",
)
POOL_TXS = Gauge(
    "cybermesh_mempool_txs",
    "Transactions in the mempool, as last seen by this process.",
)
ADMIT_BATCH_SECONDS = Histogram(
    "cybermesh_mempool_admit_batch_seconds",
    "Wall time of one admission call (single or batch), decode to commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
