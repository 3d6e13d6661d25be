"""Admin views of the console: case operations, exports, dashboard, offender page.

Thin by design: each view checks the permission, parses a form, calls ONE service or query
function, and renders or redirects with a message. They are mounted under the case admin's
URLs (``CaseAdmin.get_urls``), wrapped in ``admin_site.admin_view`` (staff login, CSRF).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.console import forms, services
from apps.console.config import console_config
from apps.console.dashboard import dashboard_data
from apps.console.errors import ConsoleError, ConsoleProblem
from apps.console.exports import bounded, export_rows, stix_bundle, to_csv, to_json
from apps.console.models import Case
from apps.console.offenders import SUBJECT_KINDS, offender_profile
from apps.console.projection import do_sync_ledger, sync_lag

EXPORT_FORMATS = ("csv", "json", "stix")


def request_id_of(request: HttpRequest) -> str:
    given = str(request.META.get("HTTP_X_REQUEST_ID", ""))
    if given and len(given) <= 100 and given.isprintable():
        return given
    return uuid.uuid4().hex


def require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(f"console.{permission}"):
        raise PermissionDenied(f"needs console.{permission}")


def sync_before_view() -> None:
    """Bring the cases up to the committed tip (one bounded step) if the console is set to."""
    if console_config().sync_on_view and sync_lag() > 0:
        do_sync_ledger()


# --- case operations -------------------------------------------------------------------------


Operation = Callable[[HttpRequest, Case, dict[str, Any], str], str]


def _triage(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_start_triage(case_id=case.pk, acting_user=request.user, request_id=request_id)
    return f"{case.reference} is being triaged."


def _confirm(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    outcome = services.do_confirm(
        case_id=case.pk, acting_user=request.user, quarantine=values["quarantine"],
        quarantine_hours=values["hours"], comment=values["comment"], request_id=request_id)
    action = outcome.action
    if action is None:
        return f"{case.reference} confirmed."
    return (f"{case.reference} confirmed. Quarantine of {action.entity}: transaction "
            f"{action.tx_id[:16]}\u2026 is {action.status}"
            + (f" ({action.status_detail})" if action.status == "rejected"
               else " until a block commits it."))


def _dismiss(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_dismiss(case_id=case.pk, acting_user=request.user, reason=values["reason"],
                        comment=values["comment"], request_id=request_id)
    return f"{case.reference} dismissed."


def _reopen(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_reopen(case_id=case.pk, acting_user=request.user, comment=values["comment"],
                       request_id=request_id)
    return f"{case.reference} reopened."


def _note(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_add_note(case_id=case.pk, acting_user=request.user, body=values["body"],
                         request_id=request_id)
    return "Note added."


def _tags(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    tags = services.do_update_tags(case_id=case.pk, acting_user=request.user,
                                   add=forms.TagsForm.split(values["add"]),
                                   remove=forms.TagsForm.split(values["remove"]),
                                   request_id=request_id)
    return "Tags: " + (", ".join(tags) or "none")


def _assign(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_assign(case_ids=[case.pk], acting_user=request.user,
                       assignee=values["assignee"], request_id=request_id)
    return f"{case.reference} assigned to {values['assignee'] or 'nobody'}."


def _classify(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    services.do_classify(case_id=case.pk, acting_user=request.user,
                         severity=values["severity"], tlp=values["tlp"], request_id=request_id)
    return f"{case.reference} is {values['severity']}, {values['tlp']}."


def _release(request: HttpRequest, case: Case, values: dict[str, Any], request_id: str) -> str:
    action = services.do_request_release(
        entity_kind=case.offender_kind, entity_value=case.offender_value,
        reason=values["reason"], acting_user=request.user, case_id=case.pk,
        request_id=request_id)
    return f"Release of {action.entity}: transaction {action.tx_id[:16]}\u2026 is {action.status}."


OPERATIONS: dict[str, tuple[type[Any] | None, Operation]] = {
    "triage": (None, _triage), "confirm": (forms.ConfirmForm, _confirm),
    "dismiss": (forms.DismissForm, _dismiss), "reopen": (forms.ReopenForm, _reopen),
    "note": (forms.NoteForm, _note), "tags": (forms.TagsForm, _tags),
    "assign": (forms.AssignForm, _assign), "classify": (forms.ClassifyForm, _classify),
    "release": (forms.ReleaseForm, _release),
}


def form_problems(form: Any) -> str:
    return "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())


def _operation(request: HttpRequest, case: Case, operation: str) -> str:
    """Run ``operation`` on ``case``; the message for the analyst. Raises ConsoleError."""
    if operation not in OPERATIONS:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"unknown operation {operation}")
    form_class, run = OPERATIONS[operation]
    values: dict[str, Any] = {}
    if form_class is not None:
        form = form_class(request.POST)
        if not form.is_valid():
            raise ConsoleError(ConsoleProblem.BAD_INPUT, form_problems(form))
        values = form.cleaned_data
    return run(request, case, values, request_id_of(request))


@require_POST
def case_operation(request: HttpRequest, object_id: str, operation: str) -> HttpResponse:
    case = get_object_or_404(Case, pk=object_id)
    try:
        messages.success(request, _operation(request, case, operation))
    except ConsoleError as error:
        messages.error(request, f"Refused ({error.problem.value}): {error}")
    return redirect(reverse("admin:console_case_change", args=[case.pk]))


# --- exports ---------------------------------------------------------------------------------


def export_response(queryset: Any, export_format: str) -> HttpResponse:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    cases = list(bounded(queryset))
    if export_format == "csv":
        response = HttpResponse(to_csv(export_rows(cases)), content_type="text/csv")
        name = f"cases-{stamp}.csv"
    elif export_format == "json":
        response = HttpResponse(to_json(export_rows(cases)), content_type="application/json")
        name = f"cases-{stamp}.json"
    else:
        response = HttpResponse(json.dumps(stix_bundle(cases), indent=2),
                                content_type="application/stix+json;version=2.1")
        name = f"indicators-{stamp}.stix.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def export_filtered(request: HttpRequest, model_admin: ModelAdmin[Case]) -> HttpResponse:
    """The case list as filtered and searched in the queue (same query string), exported."""
    require(request, "export_case")
    query = request.GET.copy()
    export_format = query.pop("format", ["csv"])[-1]
    if export_format not in EXPORT_FORMATS:
        return HttpResponse("format is one of csv, json, stix", status=400)
    request.GET = query  # type: ignore[assignment]  # the changelist refuses unknown params
    changelist = model_admin.get_changelist_instance(request)
    return export_response(changelist.get_queryset(request), export_format)


# --- dashboard -------------------------------------------------------------------------------


def dashboard(request: HttpRequest, model_admin: ModelAdmin[Case]) -> HttpResponse:
    require(request, "view_case")
    sync_before_view()
    context = {**model_admin.admin_site.each_context(request), "title": "SOC dashboard",
               "data": dashboard_data(), "live_poll_ms": console_config().live_poll_ms,
               "opts": model_admin.opts}
    return TemplateResponse(request, "console/dashboard.html", context)


def dashboard_json(request: HttpRequest) -> JsonResponse:
    require(request, "view_case")
    return JsonResponse(dashboard_data())


@require_POST
def sync_now(request: HttpRequest) -> HttpResponse:
    require(request, "triage_case")
    result = do_sync_ledger()
    messages.info(request, f"Read blocks {result.from_height}-{result.to_height}: "
                  f"{result.cases} new case(s)." if result.to_height is not None
                  else "The console is up to date with the ledger.")
    return redirect(reverse("admin:console_case_changelist"))


# --- offender page ----------------------------------------------------------------------------


def offender(request: HttpRequest, model_admin: ModelAdmin[Case], kind: str,
             value: str) -> HttpResponse:
    require(request, "view_case")
    if kind not in SUBJECT_KINDS or not value or len(value) > 300:
        return HttpResponse("unknown subject kind", status=404)
    profile = offender_profile(kind, value)
    context = {**model_admin.admin_site.each_context(request),
               "title": f"Offender {profile.subject}", "profile": profile,
               "opts": model_admin.opts,
               "series_json": profile.reputation_series,
               "release_form": forms.ReleaseForm(), "quarantine_form": forms.QuarantineForm(),
               "rule_form": forms.RuleForm(),
               "can_release": request.user.has_perm("console.release_offender"),
               "can_quarantine": request.user.has_perm("console.confirm_case"),
               "can_change_policy": request.user.has_perm("console.change_policy"),
               "policy_entity": kind != "validator"}
    return TemplateResponse(request, "console/offender.html", context)


def _offender_action(request: HttpRequest, kind: str, value: str,
                     operation: str) -> str:
    request_id = request_id_of(request)
    if operation == "release":
        release = forms.ReleaseForm(request.POST)
        if not release.is_valid():
            raise ConsoleError(ConsoleProblem.BAD_INPUT, "say why")
        action = services.do_request_release(
            entity_kind=kind, entity_value=value, reason=release.cleaned_data["reason"],
            acting_user=request.user, request_id=request_id)
    elif operation == "quarantine":
        quarantine = forms.QuarantineForm(request.POST)
        if not quarantine.is_valid():
            raise ConsoleError(ConsoleProblem.BAD_INPUT, "hours and a reason")
        action = services.do_request_quarantine(
            entity_kind=kind, entity_value=value, reason=quarantine.cleaned_data["reason"],
            hours=quarantine.cleaned_data["hours"], acting_user=request.user,
            request_id=request_id)
    elif operation == "rule":
        rule = forms.RuleForm(request.POST)
        if not rule.is_valid():
            raise ConsoleError(ConsoleProblem.BAD_INPUT, form_problems(rule))
        values = rule.cleaned_data
        action = services.do_request_rule(
            entity_kind=kind, entity_value=value, scope=values["scope"],
            action=values["action"], reason=values["reason"], remove=values["remove"],
            hours=values["hours"], acting_user=request.user, request_id=request_id)
    else:
        raise ConsoleError(ConsoleProblem.BAD_INPUT, f"unknown operation {operation}")
    return (f"{action.get_kind_display()} of {action.entity}: transaction "
            f"{action.tx_id[:16]}\u2026 is {action.status}"
            + (f" ({action.status_detail})" if action.status == "rejected" else "."))


@require_POST
def offender_operation(request: HttpRequest, kind: str, value: str,
                       operation: str) -> HttpResponse:
    try:
        messages.success(request, _offender_action(request, kind, value, operation))
    except ConsoleError as error:
        messages.error(request, f"Refused ({error.problem.value}): {error}")
    return redirect(reverse("admin:console_offender", args=[kind, value]))



# --- second factor ---------------------------------------------------------------------------


def staff_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed-in active staff, second factor or not (the enrollment page must be reachable
    by someone who still has to enroll)."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not (user.is_active and user.is_staff):
            return redirect(f"{reverse('admin:login')}?next={request.path}")
        return view(request, *args, **kwargs)

    return wrapped


def second_factor(request: HttpRequest, model_admin: ModelAdmin[Case]) -> HttpResponse:
    """Enroll, confirm or remove this user's authenticator."""
    from apps.console import second_factor as factor
    from apps.console.models import TotpDevice
    from apps.console.totp import base32, provisioning_uri

    user = request.user
    if request.method == "POST":
        step = request.POST.get("step", "")
        try:
            if step == "start":
                factor.do_start_enrollment(acting_user=user)
            elif step == "confirm":
                if not factor.verify_code(user, request.POST.get("code", ""), confirming=True):
                    raise ConsoleError(ConsoleProblem.BAD_INPUT, "that code is not valid; "
                                       "check the device's clock and try the next one")
                request.session[factor.SESSION_KEY] = True
                messages.success(request, "Two-factor login is on for your account.")
                return redirect(reverse("admin:index"))
            elif step == "remove":
                factor.do_remove_device(acting_user=user,
                                        code=request.POST.get("code", ""))
                request.session.pop(factor.SESSION_KEY, None)
                messages.success(request, "Your authenticator was removed.")
            else:
                raise ConsoleError(ConsoleProblem.BAD_INPUT, "unknown step")
        except ConsoleError as error:
            messages.error(request, str(error))
        return redirect(reverse("admin:console_2fa"))
    device = TotpDevice.objects.filter(pk=user.pk).first()
    pending = device is not None and not device.confirmed
    context = {**model_admin.admin_site.each_context(request),
               "title": "Two-factor login", "device": device, "pending": pending,
               "required": console_config().require_2fa}
    if pending and device is not None:
        secret = factor.device_secret(device)
        context.update({"secret": base32(secret), "uri": provisioning_uri(
            secret, account=user.get_username(), issuer="CyberMesh")})
    return TemplateResponse(request, "console/second_factor.html", context)
