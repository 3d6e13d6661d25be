"""Status machines and labels of the analyst console (one ``TextChoices`` per aggregate)."""

from __future__ import annotations

import re

from django.db import models


class CaseStatus(models.TextChoices):
    """new -> triaging -> confirmed / dismissed; a closed case is reopened to triaging."""

    NEW = "new", "New"
    TRIAGING = "triaging", "Triaging"
    CONFIRMED = "confirmed", "Confirmed"
    DISMISSED = "dismissed", "Dismissed"


OPEN_STATUSES = frozenset({CaseStatus.NEW, CaseStatus.TRIAGING})
CLOSED_STATUSES = frozenset({CaseStatus.CONFIRMED, CaseStatus.DISMISSED})

# The workflow: a case is confirmed or dismissed only after someone triaged it; reopening a
# closed case (back to triaging) is its own, permission-guarded step (services.do_reopen).
TRANSITIONS: dict[str, frozenset[str]] = {
    CaseStatus.NEW: frozenset({CaseStatus.TRIAGING}),
    CaseStatus.TRIAGING: frozenset({CaseStatus.CONFIRMED, CaseStatus.DISMISSED}),
    CaseStatus.CONFIRMED: frozenset({CaseStatus.TRIAGING}),
    CaseStatus.DISMISSED: frozenset({CaseStatus.TRIAGING}),
}


class ClosureReason(models.TextChoices):
    """Why a case was closed. Confirmed cases close as ``true_positive``; a dismissal names
    one of the others (``duplicate`` is what merging sets)."""

    TRUE_POSITIVE = "true_positive", "True positive"
    FALSE_POSITIVE = "false_positive", "False positive"
    DUPLICATE = "duplicate", "Duplicate"
    OUT_OF_SCOPE = "out_of_scope", "Out of scope"


DISMISSAL_REASONS = frozenset({ClosureReason.FALSE_POSITIVE, ClosureReason.DUPLICATE,
                               ClosureReason.OUT_OF_SCOPE})


class Severity(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3, Severity.CRITICAL: 4}


def severity_for_score(score: int) -> Severity:
    """A security event's severity (1..10 on the wire) as a case severity."""
    if score >= 9:
        return Severity.CRITICAL
    if score >= 7:
        return Severity.HIGH
    if score >= 4:
        return Severity.MEDIUM
    return Severity.LOW


class Tlp(models.TextChoices):
    """Traffic Light Protocol 2.0 sharing labels (FIRST)."""

    CLEAR = "TLP:CLEAR", "TLP:CLEAR"
    GREEN = "TLP:GREEN", "TLP:GREEN"
    AMBER = "TLP:AMBER", "TLP:AMBER"
    AMBER_STRICT = "TLP:AMBER+STRICT", "TLP:AMBER+STRICT"
    RED = "TLP:RED", "TLP:RED"


class CaseSource(models.TextChoices):
    """What opened the case."""

    EVIDENCE = "evidence", "Evidence"
    EVENT = "event", "Security event"


class ItemKind(models.TextChoices):
    """A ledger item attached to a case."""

    EVIDENCE = "evidence", "Evidence"
    EVENT = "event", "Security event"


class ActionKind(models.TextChoices):
    """Shared-state changes an analyst can ask for: each one is a signed policy transaction."""

    QUARANTINE = "quarantine", "Quarantine"
    RELEASE = "release", "Release"
    SET_RULE = "set_rule", "Set policy rule"
    REMOVE_RULE = "remove_rule", "Remove policy rule"


class ActionStatus(models.TextChoices):
    """Where the transaction an action produced is.

    ``signed``: recorded with the case change, not yet handed to the mempool (the outbox
    step; a crash here is repaired by ``console resubmit``); ``pending``: admitted, waiting for
    a block; ``committed``: in a committed block; ``rejected``: admission refused it;
    ``expired``: it left the mempool without being committed.
    """

    SIGNED = "signed", "Signed"
    PENDING = "pending", "Pending"
    COMMITTED = "committed", "Committed"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"


UNSETTLED_ACTIONS = frozenset({ActionStatus.SIGNED, ActionStatus.PENDING})


class TimelineKind(models.TextChoices):
    EVENT = "event", "Security event"
    EVIDENCE = "evidence", "Evidence"
    NOTE = "note", "Note"
    STATUS = "status", "Status change"
    TRANSACTION = "transaction", "Transaction"


# MITRE ATT&CK technique ids (T1059, sub-technique T1059.001), tactics (TA0001), groups
# (G0016), software (S0154) and mitigations (M1036). A tag that starts like a technique or
# tactic id ("T" or "TA" and a digit, any case) must be a well-formed one, so a mistyped
# technique ("T159", "T1059.1") is refused rather than silently becoming a free-text tag.
MITRE_ID = re.compile(r"(?:T\d{4}(?:\.\d{3})?|TA\d{4}|[GSM]\d{4})")
MITRE_LIKE = re.compile(r"TA?\d", re.IGNORECASE)
FREE_TAG = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,47}")


class TagKind(models.TextChoices):
    ATTACK = "attack", "MITRE ATT&CK"
    FREE = "free", "Free text"
