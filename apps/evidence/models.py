"""Committed evidence (the plan's ``evidence`` table).

Evidence is content-addressed: ``evidence_id`` is the SHA-256 of its canonical encoding, so the
same equivocation reported twice (by two reporters, or in two blocks) is one row, the first
committed. ``view``/``height`` locate the offence; ``committed_height`` the block recording it.
"""

from __future__ import annotations

from django.db import models


class EvidenceStatus(models.TextChoices):
    COMMITTED = "committed", "Committed"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class Evidence(models.Model):
    evidence_id = models.BinaryField(max_length=32, primary_key=True)
    kind = models.CharField(max_length=32)
    offender_id = models.CharField(max_length=300)
    epoch = models.BigIntegerField(default=0)
    view = models.BigIntegerField()
    height = models.BigIntegerField()
    reporter_id = models.CharField(max_length=128, blank=True)
    proof = models.BinaryField()
    signature = models.BinaryField(blank=True)
    status = models.CharField(max_length=16, choices=EvidenceStatus.choices,
                              default=EvidenceStatus.COMMITTED)
    committed_height = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta:
        db_table = "evidence"
        ordering = ["committed_height", "evidence_id"]
        indexes = [
            models.Index(fields=["offender_id", "committed_height", "evidence_id"],
                         name="evidence_offender_idx"),
            models.Index(fields=["committed_height", "evidence_id"], name="evidence_order_idx"),
            models.Index(fields=["view", "height"], name="evidence_view_height_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} by {self.offender_id} at view {self.view}"
