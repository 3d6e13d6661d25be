"""An offender's page: reputation over time, quarantine status and history, related items.

The reputation and quarantine come from the authenticated state (``state_kv`` rows of the
subject's two keys: one index range each, newest first and bounded), the related events and
evidence from the console's index and the evidence table. Nothing is computed from floats:
reputations are integer ppm, decayed with the executor's own function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.console.live import ms_datetime
from apps.console.models import Case, CaseAction, IndexedEvent
from apps.evidence.models import Evidence
from apps.ledger.models import Block
from apps.state.models import StateValue
from apps.state.queries import read_value
from apps.state.services import StateError, latest_version
from cybermesh.protocol.executor.keys import (
    PARAMETERS_KEY,
    Subject,
    quarantine_key,
    reputation_key,
)
from cybermesh.protocol.executor.params import SCALE_PPM, ExecutorParameters
from cybermesh.protocol.executor.records import (
    ParametersRecord,
    QuarantineRecord,
    ReputationRecord,
    StateCorrupt,
    decode_record,
)
from cybermesh.protocol.executor.reputation import reputation_at

SUBJECT_KINDS = ("ip", "cidr", "host", "account", "other", "validator")
MAX_HISTORY = 200
MAX_RELATED = 100
SAMPLES_BETWEEN_CHANGES = 4


@dataclass(frozen=True, slots=True)
class QuarantinePeriod:
    version: int
    at: datetime | None
    active: bool  # the record was set at this version (False: removed: released/expired)
    since: datetime | None = None
    until: datetime | None = None
    reason: str = ""
    cause: str = ""


@dataclass(frozen=True, slots=True)
class OffenderProfile:
    kind: str
    value: str
    version: int | None
    as_of: datetime | None
    reputation_ppm: int
    quarantine: QuarantinePeriod | None
    reputation_series: list[dict[str, Any]] = field(default_factory=list)
    quarantine_history: list[QuarantinePeriod] = field(default_factory=list)
    events: list[IndexedEvent] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    actions: list[CaseAction] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.value}"

    @property
    def reputation_percent(self) -> str:
        return f"{self.reputation_ppm / 10_000:.2f}"


def _parameters(version: int) -> ExecutorParameters:
    try:
        raw = read_value(PARAMETERS_KEY, version)
        record = decode_record(raw) if raw is not None else None
    except (StateError, StateCorrupt):
        record = None
    return record.parameters if isinstance(record, ParametersRecord) else ExecutorParameters()


def _history(key: bytes, version: int) -> list[tuple[int, bytes | None]]:
    rows = (StateValue.objects.filter(key_hash=key, version__lte=version)
            .order_by("-version").values_list("version", "value")[:MAX_HISTORY])
    return [(int(row_version), None if value is None else bytes(value))
            for row_version, value in reversed(rows)]


def _decode(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return decode_record(value)
    except StateCorrupt:
        return None


def _reputation_series(history: list[tuple[int, bytes | None]], times: dict[int, int],
                       end_ms: int, half_life_ms: int) -> list[dict[str, Any]]:
    """Points (time, reputation %) at each change and a few decayed samples between, so the
    chart shows the decay the executor applies, not straight lines."""
    points: list[dict[str, Any]] = []
    records = [(times.get(version), _decode(value)) for version, value in history]
    for index, (at_ms, decoded) in enumerate(records):
        if at_ms is None:
            continue
        record = decoded if isinstance(decoded, ReputationRecord) else None
        next_ms = end_ms if index + 1 == len(records) else (records[index + 1][0] or end_ms)
        span = max(0, next_ms - at_ms)
        for step in range(SAMPLES_BETWEEN_CHANGES + 1):
            moment = at_ms + span * step // (SAMPLES_BETWEEN_CHANGES + 1)
            ppm = reputation_at(record, moment, half_life_ms)
            points.append({"t": ms_datetime(moment).isoformat(), "ppm": ppm,
                           "percent": ppm / 10_000})
    if records:
        last = records[-1][1]
        ppm = reputation_at(last if isinstance(last, ReputationRecord) else None, end_ms,
                            half_life_ms)
        points.append({"t": ms_datetime(end_ms).isoformat(), "ppm": ppm,
                       "percent": ppm / 10_000})
    return points


def _period(version: int, at_ms: int | None, value: bytes | None) -> QuarantinePeriod:
    record = _decode(value)
    at = ms_datetime(at_ms) if at_ms is not None else None
    if not isinstance(record, QuarantineRecord):
        return QuarantinePeriod(version=version, at=at, active=False)
    return QuarantinePeriod(version=version, at=at, active=True,
                            since=ms_datetime(record.since_ms),
                            until=ms_datetime(record.expires_at_ms),
                            reason=record.reason.value, cause=record.cause.hex())


def offender_profile(kind: str, value: str) -> OffenderProfile:
    """Everything the console knows about ``kind:value`` at the latest committed state."""
    subject = Subject(kind, value)
    version = latest_version()
    tip_ms = (Block.objects.filter(height=version).values_list("timestamp_ms", flat=True)
              .first() if version is not None else None)
    reputation_ppm, current, series, periods = SCALE_PPM, None, [], []
    if version is not None and tip_ms is not None:
        parameters = _parameters(version)
        reputation_rows = _history(reputation_key(subject), version)
        quarantine_rows = _history(quarantine_key(subject), version)
        versions = {row[0] for row in reputation_rows + quarantine_rows}
        times = dict(Block.objects.filter(height__in=versions).order_by()
                     .values_list("height", "timestamp_ms"))
        series = _reputation_series(reputation_rows, times, tip_ms,
                                    parameters.reputation_half_life_ms)
        last = _decode(reputation_rows[-1][1]) if reputation_rows else None
        reputation_ppm = reputation_at(last if isinstance(last, ReputationRecord) else None,
                                       tip_ms, parameters.reputation_half_life_ms)
        periods = [_period(row_version, times.get(row_version), raw)
                   for row_version, raw in quarantine_rows]
        last_period = periods[-1] if periods else None
        if last_period is not None and last_period.active and last_period.until is not None \
                and last_period.until > ms_datetime(tip_ms):
            current = last_period
    events = list(IndexedEvent.objects.filter(offender_kind=kind, offender_value=value)
                  .order_by("-height", "-idx")[:MAX_RELATED])
    evidence = list(Evidence.objects.filter(offender_id=f"{kind}:{value}" if kind != "validator"
                                            else value)
                    .order_by("-committed_height", "evidence_id")
                    .only("evidence_id", "kind", "status", "committed_height", "reporter_id")
                    [:MAX_RELATED])
    cases = list(Case.objects.filter(offender_kind=kind, offender_value=value)
                 .select_related("assignee").order_by("-created_at")[:MAX_RELATED])
    actions = list(CaseAction.objects.filter(entity_kind=kind, entity_value=value)
                   .select_related("case").order_by("-requested_at")[:MAX_RELATED])
    return OffenderProfile(
        kind=kind, value=value, version=version,
        as_of=ms_datetime(tip_ms) if tip_ms is not None else None,
        reputation_ppm=reputation_ppm, quarantine=current, reputation_series=series,
        quarantine_history=list(reversed(periods)), events=events, evidence=evidence,
        cases=cases, actions=actions)
