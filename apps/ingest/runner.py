"""Build the node's ingest worker from settings (the one place that reads ``INGEST_*``)."""

from __future__ import annotations

from apps.ingest.worker import IngestWorker
from apps.mempool.admission import admit_batch
from cybermesh.kafka_config import (
    admin_config,
    consumer_config,
    ingest_topics,
    producer_config,
    setting,
)

__all__ = ["build_worker"]

DEFAULTS = {
    "INGEST_BATCH_SIZE": 500,
    "INGEST_POLL_TIMEOUT_MS": 500,
    "INGEST_PAUSE_MS": 1000,
    "INGEST_RETRY_BASE_S": 0.2,
    "INGEST_RETRY_MAX_S": 10.0,
    "INGEST_DLQ_TIMEOUT_S": 30.0,
    "INGEST_REMOVALS_INTERVAL_S": 5.0,
    "INGEST_LAG_INTERVAL_S": 10.0,
}


def _get(name: str) -> float:
    return float(setting(name, DEFAULTS[name]))


def build_worker(*, batch_size: int | None = None, bootstrap_servers: str | None = None,
                 group_id: str | None = None) -> IngestWorker:
    """The worker for this node: its group, the three ``ai.*`` topics, the mempool."""
    return IngestWorker(
        consumer_config=consumer_config(group_id=group_id,
                                        bootstrap_servers=bootstrap_servers),
        producer_config=producer_config(bootstrap_servers=bootstrap_servers),
        topics=ingest_topics(),
        admit=admit_batch,
        node_id=str(setting("NODE_ID", "node")),
        batch_size=batch_size or int(_get("INGEST_BATCH_SIZE")),
        poll_timeout_s=_get("INGEST_POLL_TIMEOUT_MS") / 1000,
        pause_s=_get("INGEST_PAUSE_MS") / 1000,
        retry_base_s=_get("INGEST_RETRY_BASE_S"),
        retry_max_s=_get("INGEST_RETRY_MAX_S"),
        dlq_timeout_s=_get("INGEST_DLQ_TIMEOUT_S"),
        removals_interval_s=_get("INGEST_REMOVALS_INTERVAL_S"),
        lag_interval_s=_get("INGEST_LAG_INTERVAL_S"),
        admin_config=admin_config(bootstrap_servers=bootstrap_servers),
    )
