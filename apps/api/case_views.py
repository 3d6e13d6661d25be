"""Evidence triage endpoints: a case and the workflow steps the console offers, through the
console's own services (:mod:`apps.api.triage`).

Each step needs the console permission its service checks (``console.triage_case``,
``console.confirm_case``, ``console.reopen_case``), held by the same role groups as the
API's: analysts triage, confirm, dismiss, assign and annotate; reopening a closed case takes an
operator. POSTs honour ``Idempotency-Key``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import idempotency
from apps.api.base import ApiView
from apps.api.case_serializers import (
    AssignRequestSerializer,
    CaseChangeSerializer,
    CaseSerializer,
    CaseSummarySerializer,
    ConfirmRequestSerializer,
    DismissRequestSerializer,
    NoteRequestSerializer,
    ReopenRequestSerializer,
    TriageRequestSerializer,
    case_data,
    case_item,
    note_data,
)
from apps.api.errors import problem_responses
from apps.api.filtersets import CaseFilterSet
from apps.api.ledger_views import FilteredListView
from apps.api.permissions import requires_permissions
from apps.api.triage import (
    CASE_IDENTIFIER,
    BadCaseIdentifier,
    case_actions,
    case_row,
    case_rows,
    find_case,
    run_case_action,
)
from apps.console import services
from apps.console.models import Case, CaseAction, CaseNote

CASE_PARAMETER = OpenApiParameter("case_id", str, OpenApiParameter.PATH,
                                  description="Case reference (CM-...) or UUID",
                                  pattern=CASE_IDENTIFIER)
WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503)


def _case(case_id: str) -> Case:
    try:
        case = find_case(case_id)
    except BadCaseIdentifier as error:
        raise ValidationError({"case_id": [str(error)]}) from None
    if case is None:
        raise NotFound("No case with this reference or id.")
    return case


def _case_answer(case_id: Any) -> dict[str, Any]:
    row = case_row(case_id)
    if row is None:  # deleted under us (cases are never deleted by the workflow)
        raise NotFound("No case with this reference or id.")
    return case_data(row, case_actions(case_id))


@extend_schema_view(get=extend_schema(
    tags=["triage"], operation_id="listCases",
    summary="The triage queue, newest first", parameters=[CaseFilterSet],
    responses={200: CaseSummarySerializer(many=True), **problem_responses(400, 401, 403, 429)}))
class CaseListView(FilteredListView):
    """Triage cases, newest first, filtered by status, assignee ("me", "none" or a
    username), offender or severity. Keyset pages."""

    permission_classes = [requires_permissions("console.view_case")]
    serializer_class = CaseSummarySerializer
    item = staticmethod(case_item)
    filterset_class = CaseFilterSet
    cursor_fields = (("created_at", datetime), ("id", uuid.UUID))

    def get_queryset(self) -> QuerySet[Any]:
        return case_rows()


class CaseView(ApiView):
    """A triage case: status, closure reason, assignee, offender and the signed transactions
    it caused with their live status (pending until a block commits them)."""

    permission_classes = [requires_permissions("console.view_case")]

    @extend_schema(tags=["triage"], operation_id="getCase", summary="One triage case",
                   parameters=[CASE_PARAMETER],
                   responses={200: CaseSerializer, **problem_responses(400, 401, 403, 404, 429)})
    def get(self, request: Request, case_id: str) -> Response:
        return Response(_case_answer(_case(case_id).pk))


class CaseStepView(ApiView):
    """One workflow step: validate the body, call the console service, answer the case."""

    step = ""
    body_class: type[serializers.Serializer[Any]] = TriageRequestSerializer

    def post(self, request: Request, case_id: str) -> Response:
        return idempotency.respond_once(request, self.handle_exception,
                                        lambda: self._step(request, case_id))

    def _step(self, request: Request, case_id: str) -> Response:
        case = _case(case_id)
        body = self.body_class(data=request.data)
        body.is_valid(raise_exception=True)
        request_id = getattr(request, "request_id", "")
        action, note = run_case_action(
            action=self.step, case=case, acting_user=request.user, request_id=request_id,
            perform=lambda: self.perform(case=case, data=body.validated_data,
                                         user=request.user, request_id=request_id))
        answer = _case_answer(case.pk)
        caused = next((entry for entry in answer["actions"] if action is not None
                       and entry["tx_id"] == action.tx_id), None)
        return Response({"case": answer, "action": caused,
                         "note": note_data(note) if note is not None else None})

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        raise NotImplementedError


def _step_schema(operation_id: str, summary: str, body: type[serializers.Serializer[Any]],
                 ) -> Any:
    return extend_schema_view(post=extend_schema(
        tags=["triage"], operation_id=operation_id, summary=summary, request=body,
        parameters=[CASE_PARAMETER, idempotency.PARAMETER],
        responses={200: CaseChangeSerializer, **WRITE_ERRORS}))


@_step_schema("triageCase", "Start triage (new -> triaging)", TriageRequestSerializer)
class TriageView(CaseStepView):
    """new -> triaging; the case is assigned to the caller if nobody has it."""

    permission_classes = [requires_permissions("console.triage_case")]
    step = "triage"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        services.do_start_triage(case_id=case.pk, acting_user=user, request_id=request_id)
        return None, None


@_step_schema("confirmCase", "Confirm (quarantine through consensus)", ConfirmRequestSerializer)
class ConfirmView(CaseStepView):
    """Confirm the case (a new case is triaged first). With ``quarantine`` (the default) the
    offender's quarantine is a signed policy transaction handed to the mempool: the answer's
    ``action`` is pending until a block commits it. Nothing shared is edited directly."""

    permission_classes = [requires_permissions("console.confirm_case")]
    body_class = ConfirmRequestSerializer
    step = "confirm"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        outcome = services.do_confirm(
            case_id=case.pk, acting_user=user, quarantine=data["quarantine"],
            quarantine_hours=data.get("quarantine_hours"), comment=data["comment"],
            request_id=request_id)
        return outcome.action, None


@_step_schema("dismissCase", "Dismiss with a closure reason", DismissRequestSerializer)
class DismissView(CaseStepView):
    """Dismiss the case as a false positive, duplicate or out of scope."""

    permission_classes = [requires_permissions("console.triage_case")]
    body_class = DismissRequestSerializer
    step = "dismiss"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        services.do_dismiss(case_id=case.pk, acting_user=user, reason=data["reason"],
                            comment=data["comment"], request_id=request_id)
        return None, None


@_step_schema("reopenCase", "Reopen a closed case (operator)", ReopenRequestSerializer)
class ReopenView(CaseStepView):
    """Reopen a confirmed or dismissed case (back to triaging), saying why. Needs
    ``console.reopen_case``; a quarantine the confirmation caused stays until released."""

    permission_classes = [requires_permissions("console.reopen_case")]
    body_class = ReopenRequestSerializer
    step = "reopen"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        services.do_reopen(case_id=case.pk, acting_user=user, comment=data["comment"],
                           request_id=request_id)
        return None, None


@_step_schema("assignCase", "Assign or unassign", AssignRequestSerializer)
class AssignView(CaseStepView):
    """Assign the case to an active user (by username), or unassign it with null."""

    permission_classes = [requires_permissions("console.triage_case")]
    body_class = AssignRequestSerializer
    step = "assign"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        assignee = None
        if data["assignee"] is not None:
            assignee = get_user_model().objects.filter(username=data["assignee"]).first()
            if assignee is None:
                raise ValidationError({"assignee": ["No user with this username."]})
        services.do_assign(case_ids=[case.pk], acting_user=user, assignee=assignee,
                           request_id=request_id)
        return None, None


@_step_schema("addCaseNote", "Add a note", NoteRequestSerializer)
class NoteView(CaseStepView):
    """Add a note to the case's timeline."""

    permission_classes = [requires_permissions("console.triage_case")]
    body_class = NoteRequestSerializer
    step = "note"

    def perform(self, *, case: Case, data: dict[str, Any], user: Any,
                request_id: str) -> tuple[CaseAction | None, CaseNote | None]:
        note = services.do_add_note(case_id=case.pk, acting_user=user, body=data["body"],
                                    request_id=request_id)
        return None, note
