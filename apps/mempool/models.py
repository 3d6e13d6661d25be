"""Durable mempool state: admitted transactions, recent nonces, rate buckets, the pool size.

Every row is written by the admission pipeline (:mod:`apps.mempool.admission`) or the
services (:mod:`apps.mempool.services`) inside one serializable transaction, so an admitted
transaction is on disk before ``admit`` returns and the pool cap holds across processes and
restarts. Keys are natural (tx id, producer + nonce, producer id); nothing relies on a
sequence (CockroachDB's ``unique_rowid()`` is not sequential).
"""

from __future__ import annotations

from django.db import models

from apps.mempool.choices import RemovalReason


class MempoolTransaction(models.Model):
    """One admitted, not yet committed, transaction.

    ``priority`` is the block builder's time-independent priority key
    (``cybermesh.protocol.block_builder.priority_key``): larger goes first; the lowest
    ``(priority, -tx_id)`` is evicted first when the pool is full. ``wire`` is exactly the
    bytes that were admitted (and that a block will carry).
    """

    tx_id = models.BinaryField(max_length=32, primary_key=True)
    wire = models.BinaryField()
    kind = models.CharField(max_length=32)
    producer_id = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16)
    nonce = models.BinaryField(max_length=8)
    created_at_ms = models.BigIntegerField()
    admitted_at_ms = models.BigIntegerField()
    expires_at_ms = models.BigIntegerField()
    weight = models.IntegerField()
    priority = models.BigIntegerField()
    size_bytes = models.IntegerField()
    source = models.CharField(max_length=64)

    class Meta:
        db_table = "mempool_transactions"
        ordering = ["-priority", "tx_id"]
        indexes = [
            # Forward: eviction order (lowest first); backward: block order (best first).
            models.Index(fields=["priority", "-tx_id"], name="mempool_priority_idx"),
            models.Index(fields=["expires_at_ms"], name="mempool_expiry_idx"),
            models.Index(fields=["producer_id"], name="mempool_producer_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {bytes(self.tx_id).hex()[:16]} from {self.producer_id}"


class ProducerNonce(models.Model):
    """A (producer, nonce) used by an admitted transaction, kept for the replay window.

    Outlives the mempool row (commit, eviction and expiry do not remove it), so a second,
    different transaction under the same nonce is refused even after the first was committed,
    on any node process and after a restart. Rows older than the replay window are pruned by
    ``services.expire``: anything that old is refused as stale before this table is read.
    """

    pk = models.CompositePrimaryKey("producer_id", "nonce")
    producer_id = models.CharField(max_length=64)
    nonce = models.BinaryField(max_length=8)
    tx_id = models.BinaryField(max_length=32)
    created_at_ms = models.BigIntegerField()

    class Meta:
        db_table = "mempool_producer_nonces"
        ordering = ["producer_id", "nonce"]
        indexes = [models.Index(fields=["created_at_ms"], name="mempool_nonce_age_idx")]

    def __str__(self) -> str:
        return f"{self.producer_id} nonce {bytes(self.nonce).hex()}"


class RateBucket(models.Model):
    """A producer's token bucket (see :mod:`apps.mempool.ratelimit`)."""

    producer_id = models.CharField(max_length=64, primary_key=True)
    tokens_milli = models.BigIntegerField()
    refilled_at_ms = models.BigIntegerField()

    class Meta:
        db_table = "mempool_rate_buckets"
        ordering = ["producer_id"]

    def __str__(self) -> str:
        return f"{self.producer_id}: {self.tokens_milli / 1000:.3f} tokens"


class PoolStats(models.Model):
    """The one row counting the pool (``name="pool"``), kept in step with every insert and
    delete of :class:`MempoolTransaction` in the same transaction: the cap is checked against
    it without counting the table, and it is the row concurrent admissions serialise on."""

    name = models.CharField(max_length=16, primary_key=True)
    tx_count = models.BigIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "mempool_stats"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.tx_count} txs, {self.total_bytes} bytes"


class PendingDeadLetter(models.Model):
    """An admitted transaction that left the mempool without a block, not yet dead-lettered.

    Written in the SAME transaction that deletes the mempool row (eviction by a
    higher-priority newcomer, expiry), so the event is never in neither place: its Kafka
    offset may long be committed, and invariant 4 wants it in a block, the mempool or the DLQ.
    The ingest worker publishes these rows to the DLQ and deletes each only after the broker
    acknowledged it (``apps.ingest.removals``); a crash in between publishes it again
    (dead letters are at least once). ``wire`` is exactly the admitted bytes; ``source`` the
    admission source (``kafka:<topic>``, ``api``, ...), which picks the DLQ topic.
    """

    tx_id = models.BinaryField(max_length=32, primary_key=True)
    wire = models.BinaryField()
    kind = models.CharField(max_length=32)
    source = models.CharField(max_length=64)
    reason = models.CharField(max_length=16, choices=RemovalReason.choices)
    detail = models.CharField(max_length=300, blank=True, default="")
    removed_at_ms = models.BigIntegerField()

    class Meta:
        db_table = "mempool_pending_dead_letters"
        ordering = ["removed_at_ms", "tx_id"]
        indexes = [models.Index(fields=["removed_at_ms", "tx_id"],
                                name="mempool_pending_dl_order_idx")]

    def __str__(self) -> str:
        return f"{self.reason} {bytes(self.tx_id).hex()[:16]} from {self.source}"
