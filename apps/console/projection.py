"""Bringing the console up to the committed ledger: event index, evidence links, new cases.

:func:`do_sync_ledger` reads the blocks above the console's cursor (a bounded step: at most
``CONSOLE_SYNC_BATCH_BLOCKS`` blocks and :data:`MAX_STEP_TRANSACTIONS` transactions), and in
ONE serializable transaction:

* indexes every committed security event (offender, category, severity, times);
* records which events each committed artifact evidence supports;
* opens a case for each committed evidence item and each event at or above
  ``CONSOLE_CASE_MIN_SEVERITY`` (idempotent: an item already attached to a case is skipped);
* settles the console's signed actions (committed / expired);
* moves the cursor.

Everything it writes is derived from committed blocks, so a crash or a concurrent step changes
nothing: the step is retried from the cursor, which only moves with the rows it covers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max
from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.console.actions import settle_in_transaction
from apps.console.choices import (
    SEVERITY_RANK,
    CaseSource,
    CaseStatus,
    ItemKind,
    Severity,
    severity_for_score,
)
from apps.console.config import console_config
from apps.console.live import ms_datetime
from apps.console.models import Case, CaseItem, EvidenceLink, IndexedEvent, SyncCursor
from apps.evidence.models import Evidence as EvidenceRow
from apps.ledger.models import Block
from apps.ledger.models import Transaction as LedgerTransaction
from cybermesh.db import run_serializable
from cybermesh.logging import get_logger
from cybermesh.protocol.txs.envelope import decode_transaction
from cybermesh.protocol.txs.errors import TxRejected
from cybermesh.protocol.txs.evidence import Evidence
from cybermesh.protocol.txs.security_event import SecurityEvent

logger = get_logger(__name__)

CURSOR = "ledger"
MAX_STEP_TRANSACTIONS = 20_000


@dataclass(frozen=True, slots=True)
class SyncResult:
    from_height: int | None
    to_height: int | None
    events: int
    evidence: int
    cases: int
    settled: int

    @property
    def blocks(self) -> int:
        if self.from_height is None or self.to_height is None:
            return 0
        return self.to_height - self.from_height + 1


def split_subject(text: str, *, default_kind: str = "") -> tuple[str, str]:
    """``"ip:10.0.0.1"`` -> ``("ip", "10.0.0.1")``; a bare id is ``(default_kind, text)``."""
    kind, separator, value = text.partition(":")
    if separator and kind in ("ip", "cidr", "host", "account", "other", "validator"):
        return kind, value
    return (default_kind, text) if text else ("", "")


def _reference(item_id: str) -> str:
    for length in (12, 20):
        reference = f"CM-{item_id[:length]}"
        if not Case.objects.filter(reference=reference).exists():
            return reference
    return f"CM-{uuid.uuid4().hex[:20]}"


def _open_case(*, source: CaseSource, item_kind: ItemKind, item_id: str, height: int,
               block_time: datetime, title: str, summary: str, severity: Severity,
               offender: tuple[str, str], now: datetime) -> Case:
    case = Case.objects.create(
        reference=_reference(item_id), title=title[:200], summary=summary, source=source,
        status=CaseStatus.NEW, severity=severity, severity_rank=SEVERITY_RANK[severity],
        offender_kind=offender[0], offender_value=offender[1][:300], height=height,
        first_seen_at=block_time, created_at=now, updated_at=now, status_changed_at=now)
    CaseItem.objects.create(case=case, kind=item_kind, item_id=item_id, height=height,
                            attached_at=now)
    return case


def _step_end(start: int, tip: int, max_blocks: int) -> int:
    """The last height of this step: at most ``max_blocks`` blocks, and no more blocks than
    keep the step under MAX_STEP_TRANSACTIONS transactions (at least one block)."""
    end = min(tip, start + max_blocks - 1)
    total = 0
    for height, count in (Block.objects.filter(height__gte=start, height__lte=end)
                          .order_by("height").values_list("height", "tx_count")):
        total += count
        if total > MAX_STEP_TRANSACTIONS and height > start:
            return height - 1
    return end


def _index_events(start: int, end: int, times: dict[int, int],
                  min_severity: int) -> tuple[list[IndexedEvent], list[IndexedEvent]]:
    """(every security event in the range, the ones that open a case)."""
    events = []
    rows = (LedgerTransaction.objects
            .filter(kind="security_event", block_height__gte=start, block_height__lte=end,
                    is_replay=False)
            .order_by("block_height", "idx")
            .values_list("block_height", "idx", "tx_id", "payload", "producer_id"))
    for height, idx, tx_id, payload, producer_id in rows:
        try:
            transaction = decode_transaction(bytes(payload), verify=False)
        except TxRejected as error:
            logger.warning("console.sync.undecodable", height=height, idx=idx,
                           reason=error.reason.value)
            continue
        event = transaction.payload
        if not isinstance(event, SecurityEvent):
            continue
        events.append(IndexedEvent(
            tx_id=bytes(tx_id).hex(), height=height, idx=idx,
            block_time=ms_datetime(times[height]),
            offender_kind=event.offender.kind.value, offender_value=event.offender.value,
            category=event.category.value, severity=event.severity,
            confidence_bps=event.confidence_bps,
            observed_at=ms_datetime(event.observed_at_ms), producer_id=producer_id,
            source=event.source, detector=event.detector, payload_ref=event.payload_ref))
    return events, [event for event in events if event.severity >= min_severity]


def _sync_step(max_blocks: int, now: datetime) -> SyncResult:
    config = console_config()
    cursor = SyncCursor.objects.select_for_update().filter(name=CURSOR).first()
    start = cursor.height + 1 if cursor else 0
    tip = Block.objects.aggregate(tip=Max("height"))["tip"]
    if tip is None or tip < start:
        return SyncResult(None, None, 0, 0, 0, settle_in_transaction())
    end = _step_end(start, tip, max_blocks)
    times = dict(Block.objects.filter(height__gte=start, height__lte=end).order_by()
                 .values_list("height", "timestamp_ms"))
    events, alarming = _index_events(start, end, times, config.case_min_severity)
    IndexedEvent.objects.bulk_create(events, ignore_conflicts=True)

    evidence_rows = list(EvidenceRow.objects.filter(committed_height__gte=start,
                                                    committed_height__lte=end)
                         .order_by("committed_height", "evidence_id"))
    links: list[EvidenceLink] = []
    supported: dict[str, list[str]] = {}
    for row in evidence_rows:
        evidence_id = bytes(row.evidence_id).hex()
        try:
            payload = decode_transaction(bytes(row.proof), verify=False).payload
        except TxRejected:
            payload = None
        if isinstance(payload, Evidence):
            supported[evidence_id] = [event_id.hex() for event_id in payload.supports]
            links.extend(EvidenceLink(evidence_id=evidence_id, event_id=event_id.hex(),
                                      height=row.committed_height)
                         for event_id in payload.supports)
    EvidenceLink.objects.bulk_create(links, ignore_conflicts=True)

    candidates = ([(ItemKind.EVENT, event.tx_id) for event in alarming]
                  + [(ItemKind.EVIDENCE, bytes(row.evidence_id).hex()) for row in evidence_rows])
    known = set(CaseItem.objects.filter(item_id__in=[item for _, item in candidates])
                .values_list("kind", "item_id"))
    opened = 0
    for event in alarming:
        if (ItemKind.EVENT, event.tx_id) in known:
            continue
        _open_case(source=CaseSource.EVENT, item_kind=ItemKind.EVENT, item_id=event.tx_id,
                   height=event.height, block_time=event.block_time,
                   title=f"{event.category.replace('_', ' ')} by {event.offender} "
                         f"(severity {event.severity})",
                   summary=f"Reported by {event.source} ({event.detector}); confidence "
                           f"{event.confidence_bps / 100:.0f}%; alert {event.payload_ref}",
                   severity=severity_for_score(event.severity),
                   offender=(event.offender_kind, event.offender_value), now=now)
        opened += 1
    severities = dict(IndexedEvent.objects.filter(
        tx_id__in=[event for ids in supported.values() for event in ids])
        .values_list("tx_id", "severity"))
    for row in evidence_rows:
        evidence_id = bytes(row.evidence_id).hex()
        if (ItemKind.EVIDENCE, evidence_id) in known:
            continue
        equivocation = row.kind == "equivocation"
        offender = split_subject(row.offender_id,
                                 default_kind="validator" if equivocation else "other")
        scores = [severities[event] for event in supported.get(evidence_id, ())
                  if event in severities]
        severity = (Severity.CRITICAL if equivocation
                    else severity_for_score(max(scores)) if scores else Severity.MEDIUM)
        title = (f"Equivocation by validator {offender[1]}" if equivocation
                 else f"Evidence against {offender[0]}:{offender[1]}" if offender[0]
                 else "Evidence matching no known event")
        _open_case(source=CaseSource.EVIDENCE, item_kind=ItemKind.EVIDENCE,
                   item_id=evidence_id, height=row.committed_height,
                   block_time=ms_datetime(times[row.committed_height]),
                   title=title,
                   summary=f"{row.kind} evidence reported by {row.reporter_id or 'unknown'}; "
                           f"status {row.status}; supports {len(supported.get(evidence_id, []))}"
                           " event(s)",
                   severity=severity, offender=offender, now=now)
        opened += 1
    SyncCursor.objects.update_or_create(name=CURSOR, defaults={"height": end,
                                                               "updated_at": now})
    settled = settle_in_transaction()
    if opened:
        record_audit(actor="system:console-sync", action="console.sync",
                     target=f"blocks:{start}-{end}", outcome=Outcome.SUCCESS,
                     details={"events": len(events), "evidence": len(evidence_rows),
                              "cases": opened})
    return SyncResult(start, end, len(events), len(evidence_rows), opened, settled)


def do_sync_ledger(*, max_blocks: int | None = None, now: datetime | None = None) -> SyncResult:
    """One bounded sync step (see the module docstring)."""
    blocks = max_blocks or console_config().sync_batch_blocks
    return run_serializable(lambda: _sync_step(blocks, now or timezone.now()),
                            operation="console.sync")


def do_sync_to_tip(*, max_steps: int = 1000, now: datetime | None = None) -> list[SyncResult]:
    """Steps until the cursor reaches the tip (or ``max_steps``)."""
    results = []
    for _ in range(max_steps):
        result = do_sync_ledger(now=now)
        results.append(result)
        if result.to_height is None:
            break
    return results


def sync_lag() -> int:
    """How many committed blocks the console has not read yet."""
    tip = Block.objects.aggregate(tip=Max("height"))["tip"]
    cursor = SyncCursor.objects.filter(name=CURSOR).values_list("height", flat=True).first()
    if tip is None:
        return 0
    return int(tip) - (-1 if cursor is None else int(cursor))
