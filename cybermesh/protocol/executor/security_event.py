"""Security events: record the event, lower the offender's reputation, maybe quarantine.

Impact (ppm of risk) = ``severity * confidence_bps * event_impact_ppm_per_severity // 10_000``:
with the defaults a severity-10 event at full confidence costs 100_000 ppm (0.1), so about five
such events in a row push an entity to the default quarantine threshold of 500_000. The event is
kept (``event_retention_ms``) so evidence can confirm it later.
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.keys import Subject, tx_key
from cybermesh.protocol.executor.records import EventRecord
from cybermesh.protocol.executor.reputation import penalise
from cybermesh.protocol.txs.security_event import MAX_CONFIDENCE_BPS, SecurityEvent

__all__ = ["apply_security_event", "event_impact_ppm"]


def event_impact_ppm(event: SecurityEvent, impact_per_severity_ppm: int) -> int:
    return event.severity * event.confidence_bps * impact_per_severity_ppm // MAX_CONFIDENCE_BPS


def apply_security_event(
    run: Execution, tx_id: bytes, event: SecurityEvent, record_expires_at_ms: int
) -> None:
    parameters = run.parameters
    run.writer.put(tx_key(tx_id), EventRecord(
        event.offender, event.category.value, event.severity, event.confidence_bps,
        run.height, False,
        max(record_expires_at_ms, run.now_ms + parameters.event_retention_ms)))
    penalise(run, Subject.of(event.offender), event.offender,
             event_impact_ppm(event, parameters.event_impact_ppm_per_severity), tx_id)
