"""Quarantine: automatic (reputation at or below a threshold), manual, and expiring.

* Automatic: when an offence leaves a subject's reputation at or below the threshold
  (``quarantine_threshold_ppm`` for entities, ``validator_quarantine_threshold_ppm`` for
  validators), the subject is quarantined until ``now + duration``. A further offence extends
  an active quarantine to that time and never shortens it. An entity with an effective ALLOW
  rule for every scope (``*``) is never quarantined automatically (see ``policy.py``).
* Manual: a policy ``quarantine`` sets the expiry the operator chose (it may shorten an
  automatic one); ``release`` ends an active quarantine at once.
* Expiry: a quarantine ends by itself at ``expires_at_ms`` (a ``Released(expired)`` event).
"""

from __future__ import annotations

from cybermesh.protocol.executor.context import Execution
from cybermesh.protocol.executor.events import Quarantined, Released, ReleaseReason
from cybermesh.protocol.executor.keys import Subject, quarantine_key
from cybermesh.protocol.executor.records import QuarantineReason, QuarantineRecord

__all__ = ["expire_quarantine", "impose", "is_quarantined", "lift", "quarantine_on_threshold"]


def is_quarantined(record: QuarantineRecord | None, now_ms: int) -> bool:
    return record is not None and record.expires_at_ms > now_ms


def impose(
    run: Execution,
    subject: Subject,
    until_ms: int,
    reason: QuarantineReason,
    cause: bytes,
    *,
    extend_only: bool,
) -> Quarantined | None:
    """Quarantine ``subject`` until ``until_ms``; with ``extend_only`` an active quarantine
    that already lasts longer is left alone (no event)."""
    key = quarantine_key(subject)
    current = run.writer.get_typed(key, QuarantineRecord)
    active = is_quarantined(current, run.now_ms)
    if extend_only and active and current is not None and current.expires_at_ms >= until_ms:
        return None
    since_ms = current.since_ms if active and current is not None else run.now_ms
    run.writer.put(key, QuarantineRecord(subject, since_ms, until_ms, reason, cause))
    return Quarantined(subject, until_ms, reason.value, cause)


def quarantine_on_threshold(
    run: Execution, subject: Subject, reputation_ppm: int, cause: bytes
) -> Quarantined | None:
    """Automatic quarantine when ``reputation_ppm`` is at or below the subject's threshold."""
    parameters = run.parameters
    if subject.is_validator:
        threshold = parameters.validator_quarantine_threshold_ppm
        duration = parameters.validator_quarantine_duration_ms
        reason = QuarantineReason.EQUIVOCATION
    else:
        threshold = parameters.quarantine_threshold_ppm
        duration = parameters.quarantine_duration_ms
        reason = QuarantineReason.REPUTATION
    if reputation_ppm > threshold:
        return None
    return impose(run, subject, run.now_ms + duration, reason, cause, extend_only=True)


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
