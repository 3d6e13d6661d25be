"""Dead letters for transactions that left the mempool without a block (evicted, expired).

The mempool keeps every such transaction as a ``PendingDeadLetter`` row, written in the same
database transaction that removed it from the pool (``apps.mempool.store``). Its Kafka offset
was committed when it was admitted, so that row is its only copy: the ingest worker publishes
it to a DLQ topic and deletes the row only after the broker acknowledged the dead letter. A
crash in between leaves the row, and the next drain (every start-up, every batch that evicted,
and a periodic sweep) publishes it again: at least once, like every dead letter.

Where a removed transaction goes:

* admitted from Kafka (``source = kafka:<topic>`` of one of this worker's topics): the DLQ of
  that topic;
* admitted another way (the API, the console, the node's own evidence): the DLQ of the
  ``ai.*`` topic its kind is published on (security events, evidence, policy), so
  ``manage.py dlq redrive`` offers it to every validator through Kafka;
* a kind no ``ai.*`` topic carries (governance, audit anchors): not dead-lettered. Their
  submitters follow them to commit and are told they left the pool (governance commands say
  "evicted or expired; submit it again"); the row is dropped with a warning and counted in
  ``cybermesh_ingest_removals_unroutable``.

The key is the one the producer SDK gives the transaction (its entity), and the SDK's event
headers are rebuilt, so a re-driven dead letter lands on the partition of its related events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from apps.ingest import metrics
from apps.ingest.dlq import removal_headers
from apps.ingest.letters import OutgoingLetter
from apps.mempool.choices import RemovalReason
from apps.mempool.models import PendingDeadLetter
from apps.mempool.queries import pending_dead_letters
from apps.mempool.services import forget_dead_letters
from cybermesh import failpoints
from cybermesh.kafka_config import KafkaConfigError, dlq_topic, topic
from cybermesh.logging import get_logger
from cybermesh.protocol.txs import TxKind, TxRejected, decode_transaction
from cybermesh.sdk.headers import KIND_TOPIC_NAMES, event_headers, partition_key

__all__ = ["drain_pending_dead_letters", "removal_letter",
           "source_topic_for"]

logger = get_logger(__name__)
DRAIN_BATCH = 500


def source_topic_for(row: PendingDeadLetter, sources: Mapping[str, str]) -> str | None:
    """The ``ai.*`` topic a removed transaction came from (``sources`` maps this worker's
    admission sources to its topics), else the one its kind is published on, else None."""
    if row.source in sources:
        return sources[row.source]
    try:
        name = KIND_TOPIC_NAMES.get(TxKind(row.kind))
    except ValueError:
        return None
    if name is None:
        return None
    try:
        return topic(name)
    except KafkaConfigError:
        return None


def removal_letter(row: PendingDeadLetter, *, source_topic: str, node_id: str,
                   at_ms: int) -> OutgoingLetter:
    """The dead letter of a pending row: the admitted wire bytes, the SDK key and headers."""
    wire = bytes(row.wire)
    tx_id = bytes(row.tx_id)
    try:
        # Admitted bytes decode; the signature was checked at admission.
        transaction = decode_transaction(wire, verify=False)
        key: bytes | None = partition_key(transaction)
        original = [(name, value if isinstance(value, bytes) else str(value or "").encode())
                    for name, value in event_headers(transaction)]
    except TxRejected:  # pragma: no cover - only admitted bytes are stored
        key, original = None, []
    reason = RemovalReason(row.reason)
    return OutgoingLetter(
        topic=dlq_topic(source_topic), key=key, value=wire,
        headers=removal_headers(original, source_topic=source_topic, reason=reason.value,
                                detail=row.detail or reason.label,
                                retryable=reason.retryable, node_id=node_id, at_ms=at_ms,
                                tx_id=tx_id))


def drain_pending_dead_letters(*, publish: Callable[[list[OutgoingLetter]], None],
                               sources: Mapping[str, str], node_id: str,
                               clock_ms: Callable[[], int],
                               on_published: Callable[[list[str]], None],
                               limit: int = DRAIN_BATCH) -> None:
    """Publish every pending row, oldest first, ``limit`` at a time. ``publish`` returns only
    once the broker acknowledged every letter (it raises otherwise, and the rows stay); each
    row is deleted only after that. ``on_published`` gets the reasons of each published
    chunk."""
    while True:
        rows = pending_dead_letters(limit=limit)
        if not rows:
            return
        # A crash test stops here: the eviction is committed, its dead letter not yet sent.
        failpoints.hit("ingest.before_eviction_dead_letter")
        at_ms = clock_ms()
        letters: list[OutgoingLetter] = []
        reasons: list[str] = []
        for row in rows:
            source_topic = source_topic_for(row, sources)
            if source_topic is None:
                metrics.REMOVALS_UNROUTABLE.labels(kind=row.kind).inc()
                logger.warning("ingest.removal_not_dead_lettered", kind=row.kind,
                               source=row.source, reason=row.reason,
                               tx_id=bytes(row.tx_id).hex())
                continue
            letters.append(removal_letter(row, source_topic=source_topic, node_id=node_id,
                                          at_ms=at_ms))
            reasons.append(row.reason)
        publish(letters)
        forget_dead_letters((bytes(row.tx_id), row.removed_at_ms) for row in rows)
        on_published(reasons)
        if len(rows) < limit:
            return
