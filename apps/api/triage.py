"""Evidence triage through the API: the console's case workflow, not a second copy of it.

Every write calls the console's ``do_*`` service (:mod:`apps.console.services`), which checks
the console permission, moves the case through its status machine in one serializable
transaction with the status-change row and the audit entry, and turns a confirmation into a
signed quarantine transaction that goes through the mempool and consensus. This module only
finds the case named in a URL, maps the services' refusals to problem details, and audits and
counts those refusals (the services audit what they do).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.models import QuerySet

from apps.api.errors import ApiProblem, ProblemCode
from apps.api.metrics import WRITES
from apps.audit.choices import Outcome
from apps.audit.services import record_audit
from apps.console.actions import actor_of, live_status
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.models import Case, CaseAction

T = TypeVar("T")

_REFERENCE_FORM = r"CM-[0-9a-f]{1,32}"
_UUID_FORM = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
CASE_IDENTIFIER = f"^({_REFERENCE_FORM}|{_UUID_FORM})$"
_REFERENCE = re.compile(f"^{_REFERENCE_FORM}$")
_UUID = re.compile(f"^{_UUID_FORM}$")

# ConsoleProblem -> (HTTP status, problem code).
_PROBLEMS: dict[ConsoleProblem, tuple[int, ProblemCode]] = {
    ConsoleProblem.NOT_FOUND: (404, ProblemCode.NOT_FOUND),
    ConsoleProblem.PERMISSION: (403, ProblemCode.PERMISSION_DENIED),
    ConsoleProblem.BAD_INPUT: (400, ProblemCode.VALIDATION_ERROR),
    ConsoleProblem.BAD_TRANSITION: (409, ProblemCode.CASE_STATE_CONFLICT),
    ConsoleProblem.CONFLICT: (409, ProblemCode.CASE_STATE_CONFLICT),
    ConsoleProblem.NO_OFFENDER: (422, ProblemCode.CASE_ACTION_REFUSED),
    ConsoleProblem.SIGNER_UNAVAILABLE: (503, ProblemCode.SERVICE_UNAVAILABLE),
}


class BadCaseIdentifier(ValueError):
    """A case named by something that is neither its reference nor its UUID."""


# The columns a case is shown with (``case_serializers.case_item``).
CASE_FIELDS = ("id", "reference", "title", "source", "status", "closure_reason", "severity",
               "tlp", "offender_kind", "offender_value", "assignee__username",
               "merged_into__reference", "height", "first_seen_at", "created_at",
               "status_changed_at", "closed_at")


def _lookup(identifier: str) -> dict[str, Any]:
    if _REFERENCE.match(identifier):
        return {"reference": identifier}
    if _UUID.match(identifier):
        return {"pk": uuid.UUID(identifier)}
    raise BadCaseIdentifier("A case is named by its reference (CM-...) or its UUID.")


def find_case(identifier: str) -> Case | None:
    """The case with this reference (``CM-...``, unique index) or UUID (primary key)."""
    return Case.objects.filter(**_lookup(identifier)).first()


def case_row(case_id: Any) -> dict[str, Any] | None:
    """A case's shown columns, as a plain row."""
    row: dict[str, Any] | None = (Case.objects.filter(pk=case_id).order_by()
                                  .values(*CASE_FIELDS).first())
    return row


def case_rows() -> QuerySet[Any, dict[str, Any]]:
    """Every case as plain rows, for the triage queue (filtered and keyset-paged by the view:
    newest first, on ``(created_at, id)``). The console's ``(created_at)`` and ``(status,
    created_at)`` indexes give the order; only cases sharing a creation time are sorted by id.
    Cases are this node's SOC workspace, thousands of rows, not a ledger table."""
    rows: QuerySet[Any, dict[str, Any]] = Case.objects.values(*CASE_FIELDS)
    return rows


def case_actions(case_id: Any) -> list[tuple[CaseAction, str, int | None]]:
    """The signed transactions the case caused, each with its live status and height."""
    return [(action, *live_status(action))
            for action in CaseAction.objects.filter(case_id=case_id).order_by("requested_at",
                                                                              "id")]


def run_case_action(*, action: str, case: Case, acting_user: Any, request_id: str,
                    perform: Callable[[], T]) -> T:
    """Run one console service call for the API: its refusal becomes an ``ApiProblem`` (with
    ``reason``, the console's problem), audited as ``api.case.<action>`` and counted."""
    name = f"api.case.{action}"
    try:
        result = perform()
    except ConsoleError as error:
        status, code = _PROBLEMS[error.problem]
        outcome = Outcome.DENIED if error.problem is ConsoleProblem.PERMISSION \
            else Outcome.FAILURE
        WRITES.labels(action=name, outcome=outcome).inc()
        record_audit(actor=actor_of(acting_user), action=name,
                     target=f"case:{case.reference}", outcome=outcome, request_id=request_id,
                     details={"reason": error.problem.value, "message": str(error)[:300]})
        extra: dict[str, Any] = {"reason": error.problem.value}
        if code is ProblemCode.VALIDATION_ERROR:
            extra["errors"] = {"non_field_errors": [str(error)]}
        raise ApiProblem(code, str(error), status=status, extra=extra) from None
    WRITES.labels(action=name, outcome=Outcome.SUCCESS).inc()
    return result
