"""Committed blocks, their transactions, and the notification outbox.

Rows here are written once, by :func:`apps.ledger.services.commit_block`, and never changed:
a block row is inserted with ``INSERT ... ON CONFLICT DO NOTHING`` and the stored hash compared,
so a second, different block at a committed height is detected rather than overwritten.

Keys are natural (height, hash, tx id, dedupe id): CockroachDB's ``unique_rowid()`` is neither
sequential nor gap-free, so nothing here relies on a sequence. Every model orders explicitly.
Table names follow the storage schema of the original plan (section 6.5).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from django.db import models
from django.db.models import Q

from apps.ledger.subjects import MAX_OFFENDER_LENGTH


class Block(models.Model):
    """One committed block: every header field (so its id can be recomputed), both QCs.

    ``state_root`` is the header's field, i.e. the state root after the *parent* (execution
    lags one block); ``result_state_root`` is the root after executing this block, which the
    next block's header must carry. ``justify_qc`` is the QC inside the block (certifying the
    parent); ``qc`` is the commit certificate for this block. ``payload`` is NULL when the
    payload is exactly the canonical list of this block's transaction rows (the normal case)
    and holds the raw bytes otherwise, so the block id stays recomputable.
    """

    height = models.BigIntegerField(primary_key=True)
    block_hash = models.BinaryField(max_length=32, unique=True, db_column="hash")
    parent_hash = models.BinaryField(max_length=32)
    epoch = models.BigIntegerField()
    view = models.BigIntegerField()
    proposer_id = models.CharField(max_length=64)
    timestamp_ms = models.BigIntegerField()
    tx_count = models.IntegerField()
    tx_root = models.BinaryField(max_length=32)
    state_root = models.BinaryField(max_length=32)
    result_state_root = models.BinaryField(max_length=32)
    validator_set_hash = models.BinaryField(max_length=32)
    justify_qc = models.BinaryField()
    qc = models.BinaryField()
    next_validators = models.BinaryField(null=True, blank=True)
    payload = models.BinaryField(null=True, blank=True)
    committed_at = models.DateTimeField()

    class Meta:
        db_table = "blocks"
        ordering = ["height"]

    def __str__(self) -> str:
        return f"block {self.height} {bytes(self.block_hash).hex()[:16]}"

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)


class Transaction(models.Model):
    """One transaction of a committed block, at ``(block_height, idx)``.

    ``payload`` is the transaction's canonical encoding exactly as it appears in the block;
    the other columns are extracted from it for queries. A transaction whose id was already
    committed earlier (a replay a Byzantine leader slipped in) is still stored, because the
    block is committed as it is, but with ``is_replay`` set: the tx id is unique among
    non-replays only, so a replay can never stop the chain from committing.
    """

    pk = models.CompositePrimaryKey("block_height", "idx")
    block_height = models.BigIntegerField()
    idx = models.IntegerField()
    tx_id = models.BinaryField(max_length=32)
    kind = models.CharField(max_length=32)
    payload = models.BinaryField()
    content_hash = models.BinaryField(max_length=32)
    producer_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    signature = models.BinaryField(blank=True)
    public_key = models.BinaryField(blank=True)
    is_replay = models.BooleanField(default=False)
    # What the transaction is about (apps.ledger.subjects); NULL for kinds that name none.
    offender_id = models.CharField(max_length=MAX_OFFENDER_LENGTH, null=True, blank=True)
    severity = models.SmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "transactions"
        ordering = ["block_height", "idx"]
        constraints = [
            models.UniqueConstraint(fields=["tx_id"], condition=Q(is_replay=False),
                                    name="transactions_tx_id_unique"),
        ]
        indexes = [
            models.Index(fields=["tx_id"], name="transactions_tx_id_idx"),
            # API filters walk these in (block_height, idx) order without sorting.
            models.Index(fields=["kind", "block_height", "idx"], name="transactions_kind_idx"),
            models.Index(fields=["producer_id", "block_height", "idx"],
                         name="transactions_producer_idx"),
            # Partial: most rows (governance, anchors, artifacts) name no offender or severity.
            # ``offender_id = x`` implies NOT NULL, so PostgreSQL uses them for the filters.
            models.Index(fields=["offender_id", "block_height", "idx"],
                         name="transactions_offender_idx",
                         condition=Q(offender_id__isnull=False)),
            models.Index(fields=["severity", "block_height", "idx"],
                         name="transactions_severity_idx", condition=Q(severity__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"tx {self.block_height}/{self.idx} {bytes(self.tx_id).hex()[:16]}"


class OutboxMessage(models.Model):
    """A notification to publish after a commit (drained to Kafka by a later worker).

    Written in the commit transaction, so a notification exists if and only if its block
    does. ``dedupe_id`` is derived from the block (height, position), so replaying a commit
    cannot add a second copy, and the consumer side can drop duplicates by it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dedupe_id = models.CharField(max_length=200, unique=True)
    topic = models.CharField(max_length=200)
    key = models.CharField(max_length=300, blank=True)
    payload = models.JSONField()
    height = models.BigIntegerField()
    position = models.IntegerField()
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ledger_outbox"
        ordering = ["height", "position"]
        indexes = [
            models.Index(fields=["height", "position"], name="outbox_unsent_idx",
                         condition=Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.dedupe_id}"
