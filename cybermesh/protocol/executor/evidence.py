"""Evidence impact: confirmed events cost their offender; equivocation costs a validator.

* Artifact evidence confirms every supported event still on record (within
  ``event_retention_ms``) and not confirmed before: each such event's offender takes
  ``evidence_impact_ppm`` of risk (once per event, however many evidence transactions name it),
  then the quarantine threshold is checked. Evidence naming no known event is recorded as
  ``unmatched`` and changes nothing else.
* Equivocation evidence (signatures verified by the block validator, see ``txs/evidence.py``)
  against a registered validator costs it ``equivocation_impact_ppm`` once per
  (validator, type, epoch, view); at or below ``validator_quarantine_threshold_ppm`` it is
  quarantined for ``validator_quarantine_duration_ms``, which removes it from the next epoch's
  validator set (see ``governance.py``).
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import EvidenceConfirmed, IgnoreReason
from cybermesh.protocol.executor.keys import Subject, equivocation_key, tx_key
from cybermesh.protocol.executor.records import (
    EquivocationRecord,
    EventRecord,
    EvidenceRecord,
    EvidenceStatus,
)
from cybermesh.protocol.executor.reputation import penalise
from cybermesh.protocol.txs.evidence import Evidence

__all__ = ["apply_evidence"]


def _apply_equivocation(run: Execution, tx_id: bytes, index: int, evidence: Evidence) -> None:
    proof = evidence.equivocation
    assert proof is not None  # noqa: S101 -- guaranteed by the schema
    if run.writer.base.validators.get(proof.validator_id) is None:
        run.ignore(tx_id, index, IgnoreReason.UNKNOWN_VALIDATOR)
        return
    key = equivocation_key(proof.validator_id, proof.type.value, proof.epoch, proof.view)
    if run.writer.get(key) is not None:
        run.ignore(tx_id, index, IgnoreReason.DUPLICATE_EVIDENCE)
        return
    run.writer.put(key, EquivocationRecord(tx_id, run.height))
    subject = Subject.validator(proof.validator_id)
    penalise(run, subject, None, run.parameters.equivocation_impact_ppm, tx_id)
    run.emit(EvidenceConfirmed(tx_id, (), (subject,)))


def apply_evidence(run: Execution, tx_id: bytes, index: int, evidence: Evidence,
                   remembered_until_ms: int) -> None:
    parameters = run.parameters
    expires_at_ms = max(remembered_until_ms, run.now_ms + parameters.evidence_retention_ms)
    if evidence.equivocation is not None:
        _apply_equivocation(run, tx_id, index, evidence)
        run.writer.put(tx_key(tx_id), EvidenceRecord(EvidenceStatus.CONFIRMED, (), run.height,
                                                     expires_at_ms))
        return
    matched: list[bytes] = []
    confirmed: list[bytes] = []
    subjects: list[Subject] = []
    for event_id in evidence.supports:
        key = tx_key(event_id)
        record = run.writer.get(key)
        if not isinstance(record, EventRecord) or record.expires_at_ms <= run.now_ms:
            continue
        matched.append(event_id)
        if record.confirmed:
            continue
        run.writer.put(key, EventRecord(record.offender, record.category, record.severity,
                                        record.confidence_bps, record.height, True,
                                        record.expires_at_ms))
        confirmed.append(event_id)
        subject = Subject.of(record.offender)
        if penalise(run, subject, record.offender, parameters.evidence_impact_ppm, tx_id):
            subjects.append(subject)
    status = EvidenceStatus.CONFIRMED if matched else EvidenceStatus.UNMATCHED
    run.writer.put(tx_key(tx_id), EvidenceRecord(status, tuple(matched), run.height,
                                                 expires_at_ms))
    if confirmed:
        run.emit(EvidenceConfirmed(tx_id, tuple(confirmed), tuple(subjects)))
