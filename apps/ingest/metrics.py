"""Prometheus metrics of the Kafka ingest worker (units in the names)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("cybermesh_ingest_messages", "Kafka messages handled, by outcome "
                   "(admitted, duplicate, dead_lettered, deferred).", ["topic", "outcome"])
DEAD_LETTERED = Counter("cybermesh_ingest_dead_lettered", "Events sent to a DLQ topic, by "
                        "reason (admission reasons, and evicted / expired for transactions "
                        "that left the mempool without a block).", ["reason"])
REMOVALS_UNROUTABLE = Counter("cybermesh_ingest_removals_unroutable", "Evicted or expired "
                              "transactions of a kind no ai.* topic carries (governance, audit "
                              "anchors): not dead-lettered, by kind.", ["kind"])
TRANSIENT_RETRIES = Counter("cybermesh_ingest_transient_retries", "Batches retried after a "
                            "transient failure (database, broker), by error class.", ["error"])
COMMIT_FAILURES = Counter("cybermesh_ingest_commit_failures", "Offset commits the group "
                          "coordinator refused (the events are redelivered and de-duplicated).")
PAUSES = Counter("cybermesh_ingest_pauses", "Times the consumer paused its partitions because "
                 "the mempool was full.")
PAUSED = Gauge("cybermesh_ingest_paused", "1 while the consumer's partitions are paused.")
IN_FLIGHT = Gauge("cybermesh_ingest_in_flight_messages", "Messages consumed and not yet "
                  "committed (at most one batch plus the carry-over).")
BATCH_SECONDS = Histogram("cybermesh_ingest_batch_seconds", "Wall time of one batch: admit, "
                          "dead-letter, commit.")
BATCH_SIZE = Histogram("cybermesh_ingest_batch_messages", "Messages per batch.",
                       buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
CONSUMER_LAG = Gauge("cybermesh_ingest_consumer_lag_messages", "Events on the brokers this "
                     "node's consumer group has not committed yet (high watermark minus "
                     "committed offset), per assigned partition; refreshed every "
                     "INGEST_LAG_INTERVAL_S.", ["topic", "partition"])
