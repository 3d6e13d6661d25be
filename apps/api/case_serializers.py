"""Shapes of the triage endpoints: the requests each workflow step takes, and the case as the
API shows it (status, assignee, offender and the signed transactions the case caused)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.api.serializers import iso_datetime
from apps.console.choices import (
    DISMISSAL_REASONS,
    ActionKind,
    ActionStatus,
    CaseSource,
    CaseStatus,
    ClosureReason,
    Severity,
    Tlp,
)
from apps.console.config import MAX_QUARANTINE_HOURS
from apps.console.models import CaseAction, CaseNote
from apps.console.services import MAX_COMMENT_CHARS, MAX_NOTE_CHARS

USERNAME_MAX = 150


def _comment(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=MAX_COMMENT_CHARS, **kwargs)


class TriageRequestSerializer(serializers.Serializer[Any]):
    """No fields: new -> triaging (the case is assigned to the caller if nobody has it)."""


class ConfirmRequestSerializer(serializers.Serializer[Any]):
    quarantine = serializers.BooleanField(
        default=True, help_text="Quarantine the offender (a signed policy transaction through "
                                "consensus; pending until a block commits it)")
    quarantine_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_QUARANTINE_HOURS, required=False,
        help_text="How long (default: the console's CONSOLE_QUARANTINE_HOURS)")
    comment = _comment(required=False, allow_blank=True, default="")


class DismissRequestSerializer(serializers.Serializer[Any]):
    reason = serializers.ChoiceField(choices=sorted(DISMISSAL_REASONS),
                                     help_text="The closure reason")
    comment = _comment(required=False, allow_blank=True, default="")


class ReopenRequestSerializer(serializers.Serializer[Any]):
    comment = _comment(help_text="Why the case is reopened (required)")


class AssignRequestSerializer(serializers.Serializer[Any]):
    assignee = serializers.CharField(max_length=USERNAME_MAX, allow_null=True,
                                     help_text="Username of an active user; null unassigns")


class NoteRequestSerializer(serializers.Serializer[Any]):
    body = serializers.CharField(max_length=MAX_NOTE_CHARS)


class CaseActionSerializer(serializers.Serializer[Any]):
    """A signed policy transaction the case caused (e.g. the quarantine of a confirmation)."""

    kind = serializers.ChoiceField(choices=ActionKind.values)
    entity = serializers.CharField(help_text="kind:value")
    tx_id = serializers.CharField(help_text="Transaction id (64 hex); follow it with "
                                            "GET /api/v1/submissions/{tx_id}/")
    # Plain strings: drf-spectacular would name a second "status" enum ambiguously.
    status = serializers.CharField(help_text="One of: " + ", ".join(ActionStatus.values)
                                   + " (pending: in the mempool, waiting for a block)")
    status_detail = serializers.CharField()
    block_height = serializers.IntegerField(allow_null=True)
    requested_by = serializers.CharField()
    requested_at = serializers.DateTimeField()


class CaseNoteSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    author = serializers.CharField()
    body = serializers.CharField()
    created_at = serializers.DateTimeField()


class CaseSummarySerializer(serializers.Serializer[Any]):
    """A case as the triage queue lists it."""


    id = serializers.UUIDField()
    reference = serializers.CharField()
    title = serializers.CharField()
    source = serializers.ChoiceField(  # type: ignore[assignment]  # the answer's member name
        choices=CaseSource.values)
    status = serializers.CharField(help_text="One of: " + ", ".join(CaseStatus.values))
    closure_reason = serializers.ChoiceField(choices=[*ClosureReason.values, ""])
    severity = serializers.ChoiceField(choices=Severity.values)
    tlp = serializers.ChoiceField(choices=Tlp.values)
    offender = serializers.CharField(help_text="kind:value; empty when the case names none")
    assignee = serializers.CharField(allow_null=True)
    merged_into = serializers.CharField(allow_null=True, help_text="Reference of the case "
                                                                   "this one was merged into")
    height = serializers.IntegerField()
    first_seen_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    status_changed_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class CaseSerializer(CaseSummarySerializer):
    """A case with the signed transactions it caused."""

    actions = CaseActionSerializer(many=True)


class CaseChangeSerializer(serializers.Serializer[Any]):
    case = CaseSerializer(help_text="The case after the change")
    action = CaseActionSerializer(allow_null=True,
                                  help_text="The transaction this request caused, if any")
    note = CaseNoteSerializer(allow_null=True, help_text="The note this request added, if any")


def action_data(action: CaseAction, status: str, height: int | None) -> dict[str, Any]:
    return {"kind": action.kind, "entity": action.entity, "tx_id": action.tx_id,
            "status": status, "status_detail": action.status_detail, "block_height": height,
            "requested_by": action.requested_by_name,
            "requested_at": iso_datetime(action.requested_at)}


def note_data(note: CaseNote) -> dict[str, Any]:
    return {"id": str(note.id), "author": note.author_name, "body": note.body,
            "created_at": iso_datetime(note.created_at)}


def case_item(row: dict[str, Any]) -> dict[str, Any]:
    """A case from its plain row (``triage.CASE_FIELDS``)."""
    kind = row["offender_kind"]
    return {
        "id": str(row["id"]), "reference": row["reference"], "title": row["title"],
        "source": row["source"], "status": row["status"],
        "closure_reason": row["closure_reason"], "severity": row["severity"],
        "tlp": row["tlp"], "offender": f"{kind}:{row['offender_value']}" if kind else "",
        "assignee": row["assignee__username"], "merged_into": row["merged_into__reference"],
        "height": row["height"], "first_seen_at": iso_datetime(row["first_seen_at"]),
        "created_at": iso_datetime(row["created_at"]),
        "status_changed_at": iso_datetime(row["status_changed_at"]),
        "closed_at": iso_datetime(row["closed_at"]),
    }


def case_data(row: dict[str, Any],
              actions: list[tuple[CaseAction, str, int | None]]) -> dict[str, Any]:
    return {**case_item(row), "actions": [action_data(*entry) for entry in actions]}
