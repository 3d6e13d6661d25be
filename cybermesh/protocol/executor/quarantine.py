"""Quarantine: automatic (reputation at or below a threshold), manual, and expiring.

* Automatic: when an offence leaves a subject that is not quarantined with a reputation at or
  below the threshold (``quarantine_threshold_ppm`` for entities,
  ``validator_quarantine_threshold_ppm`` for validators), it is quarantined until
  ``now + duration``. Offences during a quarantine lower the reputation further but do not
  extend it (so a noisy offender does not produce a quarantine event per alert); the first
  offence after it ends, with the reputation still low, quarantines again. An entity with an
  effective ALLOW rule for every scope (``*``) is never quarantined automatically.
* Manual: a policy ``quarantine`` sets the expiry the operator chose (it may shorten an
  automatic one); ``release`` ends an active quarantine at once.
* Expiry: a quarantine ends by itself at ``expires_at_ms`` (a ``Released(expired)`` event).
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import Quarantined, Released, ReleaseReason
from cybermesh.protocol.executor.keys import Subject, quarantine_key
from cybermesh.protocol.executor.records import QuarantineReason, QuarantineRecord

__all__ = [
    "expire_quarantine",
    "impose",
    "is_quarantined",
    "lift",
    "quarantine_on_threshold",
    "quarantined_now",
]


def is_quarantined(record: QuarantineRecord | None, now_ms: int) -> bool:
    return record is not None and record.expires_at_ms > now_ms


def impose(
    run: Execution, subject: Subject, until_ms: int, reason: QuarantineReason, cause: bytes
) -> Quarantined:
    """Quarantine ``subject`` until ``until_ms`` (replacing any quarantine it is under)."""
    key = quarantine_key(subject)
    current = run.writer.get_typed(key, QuarantineRecord)
    since_ms = current.since_ms if current is not None and is_quarantined(
        current, run.now_ms) else run.now_ms
    run.writer.put(key, QuarantineRecord(subject, since_ms, until_ms, reason, cause))
    return Quarantined(subject, until_ms, reason.value, cause)


def quarantined_now(run: Execution, subject: Subject) -> bool:
    return is_quarantined(run.writer.get_typed(quarantine_key(subject), QuarantineRecord),
                          run.now_ms)


def quarantine_on_threshold(
    run: Execution, subject: Subject, reputation_ppm: int, cause: bytes
) -> Quarantined | None:
    """Automatic quarantine of a subject not under quarantine whose ``reputation_ppm`` is at
    or below its threshold."""
    parameters = run.parameters
    if subject.is_validator:
        threshold = parameters.validator_quarantine_threshold_ppm
        duration = parameters.validator_quarantine_duration_ms
        reason = QuarantineReason.EQUIVOCATION
    else:
        threshold = parameters.quarantine_threshold_ppm
        duration = parameters.quarantine_duration_ms
        reason = QuarantineReason.REPUTATION
    if reputation_ppm > threshold or quarantined_now(run, subject):
        return None
    return impose(run, subject, run.now_ms + duration, reason, cause)


def lift(run: Execution, subject: Subject, cause: bytes) -> Released | None:
    """End an active quarantine now (None when there is none)."""
    key = quarantine_key(subject)
    current = run.writer.get_typed(key, QuarantineRecord)
    if not is_quarantined(current, run.now_ms):
        return None
    run.writer.delete(key)
    return Released(subject, ReleaseReason.MANUAL, cause)


def expire_quarantine(run: Execution, key: bytes, record: QuarantineRecord) -> Released:
    run.writer.delete(key)
    return Released(record.subject, ReleaseReason.EXPIRED, None)
