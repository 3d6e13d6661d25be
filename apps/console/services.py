"""Case workflow writes: triage, confirm, dismiss, reopen, assign, notes, tags, merge.

Every ``do_*`` function takes keyword-only arguments with the ``acting_user``, checks the
user's console permission, runs in ONE durable serializable transaction (retried on conflict)
that also writes the status-change row and the audit entry, and returns the result. Decisions
that change shared state (a quarantine, a release, a policy rule) are signed transactions
(:mod:`apps.console.actions`): recorded in that same transaction, handed to the mempool after
it commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.console.actions import (
    ActionRequest,
    actor_of,
    entity_of,
    now_ms,
    record_action_in_transaction,
    sign_action,
    signer_or_error,
    submit_actions,
)
from apps.console.choices import (
    CLOSED_STATUSES,
    DISMISSAL_REASONS,
    FREE_TAG,
    MITRE_ID,
    MITRE_LIKE,
    SEVERITY_RANK,
    TRANSITIONS,
    ActionKind,
    CaseStatus,
    ClosureReason,
    Severity,
    TagKind,
    Tlp,
)
from apps.console.config import MAX_QUARANTINE_HOURS, console_config
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.models import Case, CaseAction, CaseItem, CaseNote, CaseStatusChange, Tag
from cybermesh.db import run_serializable
from cybermesh.protocol.txs.policy import PolicyAction

MAX_NOTE_CHARS = 10_000
MAX_COMMENT_CHARS = 500
MAX_TAGS_PER_CASE = 32
MAX_MERGE = 100


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    case: Case
    action: CaseAction | None = None


def _require(user: Any, permission: str) -> None:
    if user is None or not user.has_perm(f"console.{permission}"):
        name = user.get_username() if user is not None else "nobody"
        raise ConsoleError(ConsoleProblem.PERMISSION,
                           f"{name} may not do this (needs console.{permission})")


def _locked(case_id: Any) -> Case:
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None:
        raise ConsoleError(ConsoleProblem.NOT_FOUND, f"no case {case_id}")
    return case


def _transition(case: Case, to_status: str, *, user: Any, now: datetime,
                closure_reason: str = "", comment: str = "") -> None:
    """Move ``case`` (locked) to ``to_status`` if the workflow allows it, and record who/when."""
    if to_status not in TRANSITIONS[case.status]:
        raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                           f"{case.reference} is {case.status}; it cannot become {to_status}")
    position = CaseStatusChange.objects.filter(case=case).count() + 1  # the case is locked
    CaseStatusChange.objects.create(
        case=case, position=position, from_status=case.status, to_status=to_status,
        closure_reason=closure_reason, actor=user,
        actor_name=user.get_username() if user is not None else "system",
        comment=comment[:MAX_COMMENT_CHARS], at=now)
    case.status = to_status
    case.closure_reason = closure_reason
    case.status_changed_at = now
    case.closed_at = now if to_status in CLOSED_STATUSES else None
    case.updated_at = now
    case.save(update_fields=["status", "closure_reason", "status_changed_at", "closed_at",
                             "updated_at"])


def _audit(action: str, *, user: Any, case: Case, request_id: str,
           details: dict[str, Any] | None = None, outcome: str = Outcome.SUCCESS) -> None:
    record_audit(actor=actor_of(user), action=f"console.case.{action}",
                 target=f"case:{case.reference}", outcome=outcome, request_id=request_id,
                 details=details or {})


def _check_comment(comment: str) -> str:
    if len(comment) > MAX_COMMENT_CHARS:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"a comment is at most {MAX_COMMENT_CHARS} characters")
    return comment.strip()


def do_start_triage(*, case_id: Any, acting_user: Any, request_id: str = "",
                    now: datetime | None = None) -> CaseOutcome:
    """new -> triaging; the case is assigned to the analyst if nobody has it."""
    _require(acting_user, "triage_case")
    moment = now or timezone.now()

    def run() -> CaseOutcome:
        case = _locked(case_id)
        _transition(case, CaseStatus.TRIAGING, user=acting_user, now=moment)
        if case.assignee_id is None:
            case.assignee = acting_user
            case.save(update_fields=["assignee"])
        _audit("triage", user=acting_user, case=case, request_id=request_id)
        return CaseOutcome(case)

    return run_serializable(run, operation="console.start_triage")


def _quarantine_request(case: Case, *, hours: int, comment: str, at_ms: int) -> ActionRequest:
    if not 1 <= hours <= MAX_QUARANTINE_HOURS:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"a quarantine lasts 1 to {MAX_QUARANTINE_HOURS} hours")
    entity = entity_of(case.offender_kind, case.offender_value)
    reason = f"case {case.reference} confirmed" + (f": {comment}" if comment else "")
    return sign_action(kind=ActionKind.QUARANTINE, entity=entity,
                       reason=reason.encode()[:256].decode(errors="ignore"),
                       signer=signer_or_error(), at_ms=at_ms,
                       expires_at_ms=at_ms + hours * 3_600_000)


def do_confirm(*, case_id: Any, acting_user: Any, quarantine: bool = True,
               quarantine_hours: int | None = None, comment: str = "", request_id: str = "",
               now: datetime | None = None) -> CaseOutcome:
    """Confirm a case (a new case is triaged first, both steps recorded). With ``quarantine``
    the offender is quarantined through consensus: a signed policy transaction is recorded
    with the confirmation and submitted after it commits (pending until a block has it)."""
    _require(acting_user, "confirm_case")
    comment = _check_comment(comment)
    moment = now or timezone.now()
    request: ActionRequest | None = None
    if quarantine:
        snapshot = Case.objects.filter(pk=case_id).first()
        if snapshot is None:
            raise ConsoleError(ConsoleProblem.NOT_FOUND, f"no case {case_id}")
        hours = console_config().quarantine_hours if quarantine_hours is None \
            else quarantine_hours
        # Signed before the transaction (it may run twice; the bytes stay the same), so a
        # missing key refuses the confirmation instead of confirming without the quarantine.
        request = _quarantine_request(snapshot, hours=hours, comment=comment,
                                      at_ms=int(moment.timestamp() * 1000))

    def run() -> CaseOutcome:
        case = _locked(case_id)
        if request is not None and (case.offender_kind, case.offender_value) != (
                request.entity.kind.value, request.entity.value):
            raise ConsoleError(ConsoleProblem.CONFLICT, f"{case.reference} changed; retry")
        if case.status == CaseStatus.NEW:
            _transition(case, CaseStatus.TRIAGING, user=acting_user, now=moment)
        _transition(case, CaseStatus.CONFIRMED, user=acting_user, now=moment,
                    closure_reason=ClosureReason.TRUE_POSITIVE, comment=comment)
        action = None
        if request is not None:
            action = record_action_in_transaction(request, case=case,
                                                  acting_user=acting_user, now=moment,
                                                  request_id=request_id)
        _audit("confirm", user=acting_user, case=case, request_id=request_id,
               details={"quarantine": action.tx_id if action else None})
        return CaseOutcome(case, action)

    outcome = run_serializable(run, operation="console.confirm")
    if outcome.action is not None:
        submitted = submit_actions([outcome.action.id], at_ms=now_ms(), request_id=request_id)
        return CaseOutcome(outcome.case, submitted[0] if submitted else outcome.action)
    return outcome


def do_dismiss(*, case_id: Any, acting_user: Any, reason: str, comment: str = "",
               request_id: str = "", now: datetime | None = None) -> CaseOutcome:
    """Dismiss a case as a false positive, duplicate or out of scope."""
    _require(acting_user, "triage_case")
    if reason not in DISMISSAL_REASONS:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, "a dismissal names its reason: "
                           + ", ".join(sorted(DISMISSAL_REASONS)))
    comment = _check_comment(comment)
    moment = now or timezone.now()

    def run() -> CaseOutcome:
        case = _locked(case_id)
        if case.status == CaseStatus.NEW:
            _transition(case, CaseStatus.TRIAGING, user=acting_user, now=moment)
        _transition(case, CaseStatus.DISMISSED, user=acting_user, now=moment,
                    closure_reason=reason, comment=comment)
        _audit("dismiss", user=acting_user, case=case, request_id=request_id,
               details={"reason": reason})
        return CaseOutcome(case)

    return run_serializable(run, operation="console.dismiss")


def do_reopen(*, case_id: Any, acting_user: Any, comment: str, request_id: str = "",
              now: datetime | None = None) -> CaseOutcome:
    """Reopen a confirmed or dismissed case (back to triaging). Needs ``reopen_case`` and a
    comment saying why. A quarantine the confirmation caused stays until released."""
    _require(acting_user, "reopen_case")
    comment = _check_comment(comment)
    if not comment:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, "say why the case is reopened")
    moment = now or timezone.now()

    def run() -> CaseOutcome:
        case = _locked(case_id)
        if case.status not in CLOSED_STATUSES:
            raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                               f"{case.reference} is {case.status}, not closed")
        if case.merged_into_id is not None:
            raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                               f"{case.reference} was merged; reopen the case it was merged "
                               "into")
        _transition(case, CaseStatus.TRIAGING, user=acting_user, now=moment, comment=comment)
        _audit("reopen", user=acting_user, case=case, request_id=request_id)
        return CaseOutcome(case)

    return run_serializable(run, operation="console.reopen")


def do_assign(*, case_ids: Sequence[Any], acting_user: Any, assignee: Any | None,
              request_id: str = "", now: datetime | None = None) -> int:
    """Assign cases to ``assignee`` (None: unassign). Returns how many changed."""
    _require(acting_user, "triage_case")
    if assignee is not None and not assignee.is_active:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"{assignee.get_username()} is inactive")
    moment = now or timezone.now()

    def run() -> int:
        changed = 0
        for case in Case.objects.select_for_update().filter(pk__in=list(case_ids)):
            if case.assignee_id == (assignee.pk if assignee else None):
                continue
            previous = case.assignee.get_username() if case.assignee else None
            case.assignee = assignee
            case.updated_at = moment
            case.save(update_fields=["assignee", "updated_at"])
            _audit("assign", user=acting_user, case=case, request_id=request_id, details={
                "from": previous, "to": assignee.get_username() if assignee else None})
            changed += 1
        return changed

    return run_serializable(run, operation="console.assign")


def do_add_note(*, case_id: Any, acting_user: Any, body: str, request_id: str = "",
                now: datetime | None = None) -> CaseNote:
    _require(acting_user, "triage_case")
    text = body.strip()
    if not text or len(text) > MAX_NOTE_CHARS or "\x00" in text:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"a note is 1 to {MAX_NOTE_CHARS} characters of text")
    moment = now or timezone.now()

    def run() -> CaseNote:
        case = _locked(case_id)
        note = CaseNote.objects.create(case=case, author=acting_user,
                                       author_name=acting_user.get_username(), body=text,
                                       created_at=moment)
        case.updated_at = moment
        case.save(update_fields=["updated_at"])
        _audit("note", user=acting_user, case=case, request_id=request_id,
               details={"note": str(note.id), "chars": len(text)})
        return note

    return run_serializable(run, operation="console.add_note")


def normalize_tag(raw: str) -> tuple[str, TagKind]:
    """A tag's canonical name and kind: ATT&CK ids uppercase and well-formed, free tags
    lowercase tokens. ``BAD_INPUT`` for anything else (e.g. ``T159``, ``t1059.1``)."""
    text = raw.strip()
    if MITRE_ID.fullmatch(text.upper()) and (MITRE_LIKE.match(text) or text.isupper()):
        return text.upper(), TagKind.ATTACK
    if MITRE_LIKE.match(text):
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"{text!r} is not a MITRE ATT&CK id "
                           "(techniques T1234 or T1234.567, tactics TA1234)")
    lowered = text.lower()
    if not FREE_TAG.fullmatch(lowered):
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"{text!r} is not a tag (1-48 of a-z 0-9 "
                           "._:/-, starting with a letter or digit)")
    return lowered, TagKind.FREE


def do_update_tags(*, case_id: Any, acting_user: Any, add: Iterable[str] = (),
                   remove: Iterable[str] = (), request_id: str = "",
                   now: datetime | None = None) -> list[str]:
    """Add and remove tags; returns the case's tags after the change."""
    _require(acting_user, "triage_case")
    to_add = dict(normalize_tag(name) for name in add if name.strip())
    to_remove = {normalize_tag(name)[0] for name in remove if name.strip()}
    moment = now or timezone.now()

    def run() -> list[str]:
        case = _locked(case_id)
        for name, kind in to_add.items():
            tag, _ = Tag.objects.get_or_create(name=name, defaults={"kind": kind})
            case.tags.add(tag)
        if to_remove:
            case.tags.remove(*Tag.objects.filter(name__in=to_remove))
        names = sorted(case.tags.values_list("name", flat=True))
        if len(names) > MAX_TAGS_PER_CASE:
            raise ConsoleError(ConsoleProblem.BAD_INPUT,
                               f"a case has at most {MAX_TAGS_PER_CASE} tags")
        case.updated_at = moment
        case.save(update_fields=["updated_at"])
        _audit("tags", user=acting_user, case=case, request_id=request_id,
               details={"added": sorted(to_add), "removed": sorted(to_remove)})
        return names

    return run_serializable(run, operation="console.update_tags")


def do_classify(*, case_id: Any, acting_user: Any, severity: str, tlp: str,
                request_id: str = "", now: datetime | None = None) -> CaseOutcome:
    """Set the case's severity and TLP sharing label."""
    _require(acting_user, "triage_case")
    if severity not in Severity.values or tlp not in Tlp.values:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, "unknown severity or TLP label")
    moment = now or timezone.now()

    def run() -> CaseOutcome:
        case = _locked(case_id)
        before = {"severity": case.severity, "tlp": case.tlp}
        case.severity, case.tlp = severity, tlp
        case.severity_rank = SEVERITY_RANK[Severity(severity)]
        case.updated_at = moment
        case.save(update_fields=["severity", "severity_rank", "tlp", "updated_at"])
        _audit("classify", user=acting_user, case=case, request_id=request_id,
               details={"before": before, "after": {"severity": severity, "tlp": tlp}})
        return CaseOutcome(case)

    return run_serializable(run, operation="console.classify")


def do_merge(*, primary_id: Any, duplicate_ids: Sequence[Any], acting_user: Any,
             request_id: str = "", now: datetime | None = None) -> CaseOutcome:
    """Merge duplicates into ``primary``: their items and tags move to it, each duplicate is
    dismissed as ``duplicate`` with ``merged_into`` set, and the primary gets a note."""
    _require(acting_user, "triage_case")
    others = [value for value in dict.fromkeys(duplicate_ids) if str(value) != str(primary_id)]
    if not others or len(others) > MAX_MERGE:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"merge 1 to {MAX_MERGE} other cases into one")
    moment = now or timezone.now()

    def run() -> CaseOutcome:
        primary = _locked(primary_id)
        if primary.merged_into_id is not None:
            raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                               f"{primary.reference} was itself merged")
        duplicates = list(Case.objects.select_for_update().filter(pk__in=others)
                          .order_by("created_at"))
        if len(duplicates) != len(others):
            raise ConsoleError(ConsoleProblem.NOT_FOUND, "a case to merge does not exist")
        references = []
        for duplicate in duplicates:
            if duplicate.merged_into_id is not None:
                raise ConsoleError(ConsoleProblem.BAD_TRANSITION,
                                   f"{duplicate.reference} is already merged")
            CaseItem.objects.filter(case=duplicate).update(case=primary)
            primary.tags.add(*duplicate.tags.all())
            if duplicate.status == CaseStatus.NEW:
                _transition(duplicate, CaseStatus.TRIAGING, user=acting_user, now=moment)
            if duplicate.status == CaseStatus.TRIAGING:
                _transition(duplicate, CaseStatus.DISMISSED, user=acting_user, now=moment,
                            closure_reason=ClosureReason.DUPLICATE,
                            comment=f"merged into {primary.reference}")
            duplicate.merged_into = primary
            duplicate.save(update_fields=["merged_into"])
            references.append(duplicate.reference)
        if primary.severity_rank < max(d.severity_rank for d in duplicates):
            top = max(duplicates, key=lambda d: d.severity_rank)
            primary.severity, primary.severity_rank = top.severity, top.severity_rank
        primary.updated_at = moment
        primary.save(update_fields=["severity", "severity_rank", "updated_at"])
        CaseNote.objects.create(case=primary, author=acting_user,
                                author_name=acting_user.get_username(), created_at=moment,
                                body=f"Merged duplicates: {', '.join(references)}")
        _audit("merge", user=acting_user, case=primary, request_id=request_id,
               details={"duplicates": references})
        return CaseOutcome(primary)

    return run_serializable(run, operation="console.merge")


def _request_policy(*, kind: ActionKind, permission: str, entity_kind: str,
                    entity_value: str, reason: str, acting_user: Any, case_id: Any | None,
                    request_id: str, now: datetime | None, scope: str | None = None,
                    policy_action: PolicyAction | None = None,
                    expires_in: timedelta | None = None) -> CaseAction:
    _require(acting_user, permission)
    reason = reason.strip()
    if not reason:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, "say why (the reason is on the ledger)")
    entity = entity_of(entity_kind, entity_value)
    moment = now or timezone.now()
    at_ms = int(moment.timestamp() * 1000)
    expires_at_ms = None if expires_in is None else at_ms + int(
        expires_in.total_seconds() * 1000)
    request = sign_action(kind=kind, entity=entity, reason=reason, signer=signer_or_error(),
                          at_ms=at_ms, scope=scope, policy_action=policy_action,
                          expires_at_ms=expires_at_ms)

    def run() -> CaseAction:
        case = _locked(case_id) if case_id is not None else None
        return record_action_in_transaction(request, case=case, acting_user=acting_user,
                                            now=moment, request_id=request_id)

    action = run_serializable(run, operation=f"console.{kind.value}")
    submitted = submit_actions([action.id], at_ms=now_ms(), request_id=request_id)
    return submitted[0] if submitted else action


def do_request_release(*, entity_kind: str, entity_value: str, reason: str, acting_user: Any,
                       case_id: Any | None = None, request_id: str = "",
                       now: datetime | None = None) -> CaseAction:
    """Ask consensus to end the entity's quarantine (a signed ``release`` transaction)."""
    return _request_policy(kind=ActionKind.RELEASE, permission="release_offender",
                           entity_kind=entity_kind, entity_value=entity_value, reason=reason,
                           acting_user=acting_user, case_id=case_id, request_id=request_id,
                           now=now)


def do_request_quarantine(*, entity_kind: str, entity_value: str, reason: str,
                          hours: int, acting_user: Any, case_id: Any | None = None,
                          request_id: str = "", now: datetime | None = None) -> CaseAction:
    """Ask consensus to quarantine an entity for ``hours`` (a signed ``quarantine``)."""
    if not 1 <= hours <= MAX_QUARANTINE_HOURS:
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"a quarantine lasts 1 to {MAX_QUARANTINE_HOURS} hours")
    return _request_policy(kind=ActionKind.QUARANTINE, permission="confirm_case",
                           entity_kind=entity_kind, entity_value=entity_value, reason=reason,
                           acting_user=acting_user, case_id=case_id, request_id=request_id,
                           now=now, expires_in=timedelta(hours=hours))


def do_request_rule(*, entity_kind: str, entity_value: str, scope: str, action: str,
                    reason: str, acting_user: Any, remove: bool = False,
                    hours: int | None = None, case_id: Any | None = None,
                    request_id: str = "", now: datetime | None = None) -> CaseAction:
    """Ask consensus to set (for ``hours``) or remove an allow/deny rule."""
    try:
        policy_action = PolicyAction(action)
    except ValueError:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, "a rule's action is allow or deny") \
            from None
    if not remove and (hours is None or not 1 <= hours <= MAX_QUARANTINE_HOURS):
        raise ConsoleError(ConsoleProblem.BAD_INPUT,
                           f"a rule lasts 1 to {MAX_QUARANTINE_HOURS} hours")
    return _request_policy(
        kind=ActionKind.REMOVE_RULE if remove else ActionKind.SET_RULE,
        permission="change_policy", entity_kind=entity_kind, entity_value=entity_value,
        reason=reason, acting_user=acting_user, case_id=case_id, request_id=request_id,
        now=now, scope=scope, policy_action=policy_action,
        expires_in=None if remove else timedelta(hours=hours or 0))
