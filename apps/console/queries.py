"""Reads for the triage queue and a case's page: search, SLA age, the timeline.

Every read here is bounded: the queue search uses indexed columns (reference, item ids,
offender) before free text, and a timeline shows at most :data:`MAX_TIMELINE_ITEMS` of each
kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.console.actions import live_status
from apps.console.choices import ActionStatus, ItemKind, TimelineKind
from apps.console.config import ConsoleConfig, console_config
from apps.console.live import ms_datetime
from apps.console.models import Case, CaseItem, EvidenceLink, IndexedEvent
from apps.evidence.models import Evidence
from apps.ledger.models import Block

MAX_TIMELINE_ITEMS = 200
_HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True, slots=True)
class SlaState:
    age_seconds: int
    sla_seconds: int
    overdue: bool

    @property
    def used_percent(self) -> int:
        return min(999, self.age_seconds * 100 // max(1, self.sla_seconds))

    @property
    def bucket(self) -> str:
        """``ok`` (under half the SLA used), ``due`` (half or more) or ``overdue``."""
        if self.overdue:
            return "overdue"
        return "due" if self.used_percent >= 50 else "ok"


def sla_state(case: Case, *, now: datetime | None = None,
              config: ConsoleConfig | None = None) -> SlaState:
    """The case's age against its severity's SLA; a closed case stops its clock."""
    config = config or console_config()
    end = case.closed_at or now or timezone.now()
    age = max(0, int((end - case.created_at).total_seconds()))
    sla = config.sla_seconds(case.severity)
    return SlaState(age_seconds=age, sla_seconds=sla, overdue=age > sla)


def format_duration(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def search_cases(queryset: QuerySet[Case], term: str) -> QuerySet[Case]:
    """Cases matching ``term``: a reference (``CM-...``), a tx / evidence id or a prefix of
    one (8+ hex digits, also the id of an action's transaction), an entity (``ip:10.0.0.1``
    or the bare value), a tag, or free text in the title, summary and notes."""
    text = term.strip()
    if not text:
        return queryset
    lowered = text.lower()
    condition = Q(reference__iexact=text) | Q(offender_value=text) | Q(tags__name__iexact=text)
    if lowered.startswith("cm-"):
        condition |= Q(reference__istartswith=lowered)
    if _HEX.fullmatch(lowered):
        item_filter = (Q(item_id=lowered) if len(lowered) == 64
                       else Q(item_id__startswith=lowered))
        condition |= Q(pk__in=CaseItem.objects.filter(item_filter).values("case_id"))
        action_filter = Q(actions__tx_id=lowered) if len(lowered) == 64 \
            else Q(actions__tx_id__startswith=lowered)
        condition |= action_filter
    kind, separator, value = text.partition(":")
    if separator and kind in ("ip", "cidr", "host", "account", "other", "validator"):
        condition |= Q(offender_kind=kind, offender_value=value)
    condition |= (Q(title__icontains=text) | Q(summary__icontains=text)
                  | Q(notes__body__icontains=text))
    return queryset.filter(condition).distinct()


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: TimelineKind
    title: str
    detail: str = ""
    actor: str = ""
    link: str = ""
    status: str = ""


def _block_times(heights: set[int]) -> dict[int, datetime]:
    return {height: ms_datetime(stamp) for height, stamp in Block.objects
            .filter(height__in=heights).order_by().values_list("height", "timestamp_ms")}


def case_timeline(case: Case) -> list[TimelineEntry]:
    """Everything that happened to the case, oldest first: its events and evidence (and the
    events its evidence supports, the evidence supporting its events), notes, status changes
    and the transactions it caused (with their live status)."""
    entries: list[TimelineEntry] = []
    items = list(case.items.order_by("height")[:MAX_TIMELINE_ITEMS])
    event_ids = {item.item_id for item in items if item.kind == ItemKind.EVENT}
    evidence_ids = {item.item_id for item in items if item.kind == ItemKind.EVIDENCE}
    linked_events = set(EvidenceLink.objects.filter(evidence_id__in=evidence_ids)
                        .values_list("event_id", flat=True)[:MAX_TIMELINE_ITEMS])
    linked_evidence = set(EvidenceLink.objects.filter(event_id__in=event_ids)
                          .values_list("evidence_id", flat=True)[:MAX_TIMELINE_ITEMS])
    for event in IndexedEvent.objects.filter(tx_id__in=event_ids | linked_events)[
            :MAX_TIMELINE_ITEMS]:
        supporting = "" if event.tx_id in event_ids else " (supported by this case's evidence)"
        entries.append(TimelineEntry(
            at=event.block_time, kind=TimelineKind.EVENT,
            title=f"{event.category} by {event.offender}, severity {event.severity}{supporting}",
            detail=f"tx {event.tx_id} in block {event.height}; observed "
                   f"{event.observed_at:%Y-%m-%d %H:%M:%S}; {event.detector}",
            link=event.tx_id))
    evidence_rows = list(Evidence.objects.filter(
        evidence_id__in=[bytes.fromhex(value) for value in evidence_ids | linked_evidence])
        .only("evidence_id", "kind", "status", "committed_height", "offender_id",
              "reporter_id")[:MAX_TIMELINE_ITEMS])
    times = _block_times({row.committed_height for row in evidence_rows})
    for row in evidence_rows:
        evidence_id = bytes(row.evidence_id).hex()
        relation = "" if evidence_id in evidence_ids else " (supports this case's event)"
        entries.append(TimelineEntry(
            at=times.get(row.committed_height) or case.first_seen_at,
            kind=TimelineKind.EVIDENCE,
            title=f"{row.kind} evidence committed, status {row.status}{relation}",
            detail=f"evidence {evidence_id} in block {row.committed_height}; reported by "
                   f"{row.reporter_id or 'unknown'}", link=evidence_id))
    for note in case.notes.all()[:MAX_TIMELINE_ITEMS]:
        entries.append(TimelineEntry(at=note.created_at, kind=TimelineKind.NOTE,
                                     title="Note", detail=note.body, actor=note.author_name))
    for change in case.status_changes.all()[:MAX_TIMELINE_ITEMS]:
        reason = f" ({change.get_closure_reason_display()})" if change.closure_reason else ""
        entries.append(TimelineEntry(
            at=change.at, kind=TimelineKind.STATUS,
            title=f"{change.from_status} \u2192 {change.to_status}{reason}",
            detail=change.comment, actor=change.actor_name, status=change.to_status))
    for action in case.actions.order_by("requested_at")[:MAX_TIMELINE_ITEMS]:
        status, height = live_status(action)
        where = f" in block {height}" if height is not None else ""
        entries.append(TimelineEntry(
            at=action.requested_at, kind=TimelineKind.TRANSACTION,
            title=f"{action.get_kind_display()} {action.entity}: {status}{where}",
            detail=f"tx {action.tx_id} signed by {action.producer_id}"
                   + (f"; {action.status_detail}" if action.status_detail
                      and status != ActionStatus.COMMITTED else ""),
            actor=action.requested_by_name, link=action.tx_id, status=status))
    entries.sort(key=lambda entry: entry.at)
    return entries


def case_summary_row(case: Case, *, now: datetime, config: ConsoleConfig) -> dict[str, Any]:
    """One case as plain values (exports, JSON)."""
    sla = sla_state(case, now=now, config=config)
    return {
        "reference": case.reference, "id": str(case.id), "title": case.title,
        "status": case.status, "closure_reason": case.closure_reason,
        "severity": case.severity, "tlp": case.tlp, "source": case.source,
        "offender": case.offender,
        "assignee": case.assignee.get_username() if case.assignee else "",
        "tags": sorted(tag.name for tag in case.tags.all()),
        "height": case.height, "first_seen_at": case.first_seen_at.isoformat(),
        "created_at": case.created_at.isoformat(),
        "closed_at": case.closed_at.isoformat() if case.closed_at else "",
        "age_seconds": sla.age_seconds, "sla_seconds": sla.sla_seconds,
        "overdue": sla.overdue,
        "merged_into": case.merged_into.reference if case.merged_into else "",
        "items": [f"{item.kind}:{item.item_id}" for item in case.items.all()],
    }
