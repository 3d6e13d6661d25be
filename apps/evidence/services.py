"""Writes to the evidence table, inside the block commit transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from apps.evidence.models import Evidence, EvidenceStatus
from apps.ledger.records import EvidenceRecord


def record_evidence(*, records: Sequence[EvidenceRecord], committed_height: int,
                    now: datetime | None = None, using: str = "default") -> int:
    """Insert evidence first committed at ``committed_height``; evidence already recorded
    (same id, committed earlier) is left as it was. Returns the number of new rows."""
    if not connections[using].in_atomic_block:
        raise transaction.TransactionManagementError("record_evidence needs a transaction")
    if not records:
        return 0
    now = now or timezone.now()
    ids = [record.evidence_id for record in records]
    known = {bytes(value) for value in Evidence.objects.using(using)
             .filter(evidence_id__in=ids).values_list("evidence_id", flat=True)}
    fresh: dict[bytes, EvidenceRecord] = {}
    for record in records:
        if record.evidence_id not in known:
            fresh.setdefault(record.evidence_id, record)
    Evidence.objects.using(using).bulk_create(
        [Evidence(evidence_id=record.evidence_id, kind=record.kind,
                  offender_id=record.offender_id, epoch=record.epoch, view=record.view,
                  height=record.height, reporter_id=record.reporter_id, proof=record.proof,
                  signature=record.signature,
                  status=(EvidenceStatus.CONFIRMED if record.confirmed
                          else EvidenceStatus.COMMITTED),
                  committed_height=committed_height, created_at=now)
         for record in fresh.values()],
        ignore_conflicts=True)
    return len(fresh)
