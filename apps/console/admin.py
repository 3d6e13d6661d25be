"""The triage queue and case pages in the Django admin, plus the console's own pages.

No case field is edited through a ModelAdmin form: the queue's bulk actions and the case
page's buttons call :mod:`apps.console.services` (audited, one transaction each), and anything
that changes shared state is a signed transaction through consensus. Extra pages (dashboard,
offender, exports, operations) hang off the case admin's URLs (see :meth:`CaseAdmin.get_urls`).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.audit.admin import BoundedCountPaginator
from apps.console import forms, services, views
from apps.console.choices import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    TRANSITIONS,
    ClosureReason,
    Severity,
)
from apps.console.config import console_config
from apps.console.errors import ConsoleError
from apps.console.models import Case, CaseAction, Tag
from apps.console.queries import case_timeline, format_duration, search_cases, sla_state
from apps.console.second_factor import SecondFactorLoginForm, admin_permission

if TYPE_CHECKING:  # generic only in django-stubs, not at runtime
    _CaseAdminBase = admin.ModelAdmin[Any]
else:
    _CaseAdminBase = admin.ModelAdmin


class AssignedFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assigned"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("me", "Assigned to me"), ("none", "Unassigned"), ("others", "Others")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        if self.value() == "me":
            return queryset.filter(assignee_id=request.user.pk)
        if self.value() == "none":
            return queryset.filter(assignee__isnull=True)
        if self.value() == "others":
            return queryset.exclude(assignee__isnull=True).exclude(assignee_id=request.user.pk)
        return queryset


class QueueFilter(admin.SimpleListFilter):
    """Open cases by default: the queue is what still needs someone."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("all", "All cases"), ("closed", "Closed"), ("overdue", "Open and overdue")]

    def choices(self, changelist: Any) -> Any:
        yield {"selected": self.value() is None,
               "query_string": changelist.get_query_string(remove=[self.parameter_name]),
               "display": "Open"}
        for lookup, title in self.lookup_choices:
            yield {"selected": self.value() == lookup,
                   "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                   "display": title}

    def queryset(self, request: HttpRequest, queryset: QuerySet[Case]) -> QuerySet[Case]:
        value = self.value()
        if value == "all":
            return queryset
        if value == "closed":
            return queryset.filter(status__in=list(CLOSED_STATUSES))
        open_cases = queryset.filter(status__in=list(OPEN_STATUSES))
        if value == "overdue":
            config, now = console_config(), timezone.now()
            overdue = Q()
            for severity in Severity:
                overdue |= Q(severity=severity, created_at__lt=now - timedelta(
                    seconds=config.sla_seconds(severity)))
            return open_cases.filter(overdue)
        return open_cases


def _run_bulk(model_admin: Any, request: HttpRequest, queryset: QuerySet[Case],
              service: Any, done: str) -> None:
    """Call ``service(case)`` for each selected case; report successes and refusals."""
    succeeded, refused = [], []
    for case in queryset.order_by("created_at"):
        try:
            service(case)
            succeeded.append(case.reference)
        except ConsoleError as error:
            refused.append(f"{case.reference}: {error}")
    if succeeded:
        model_admin.message_user(request, f"{done}: {', '.join(succeeded)}", messages.SUCCESS)
    for line in refused:
        model_admin.message_user(request, f"Refused {line}", messages.ERROR)


@admin.register(Case)
class CaseAdmin(_CaseAdminBase):
    list_display = ("reference_link", "title", "status_badge", "severity_badge", "tlp_badge",
                    "offender_link", "assignee", "age_vs_sla", "transactions")
    list_display_links = None
    list_filter = (QueueFilter, AssignedFilter, "status", "severity", "tlp", "source",
                   "closure_reason")
    list_select_related = ("assignee",)
    search_fields = ("reference",)  # shows the box; the search itself is search_cases()
    search_help_text = ("Reference, tx/evidence id (or 8+ hex prefix), entity (ip:1.2.3.4), "
                        "tag, or words in title, summary and notes")
    ordering = ("-severity_rank", "created_at")
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = ["assign_to_me", "unassign", "start_triage", "confirm_and_quarantine",
               "confirm_only", "dismiss_false_positive", "dismiss_duplicate",
               "dismiss_out_of_scope", "merge_into_oldest", "export_csv", "export_json",
               "export_stix"]
    change_list_template = "admin/console/case/change_list.html"
    change_form_template = "admin/console/case/change_form.html"
    readonly_fields = ("reference", "title", "summary", "status_badge", "closure_reason",
                       "severity_badge", "tlp_badge", "source", "offender_link", "assignee",
                       "tag_list", "merged_into", "height", "first_seen_at", "created_at",
                       "status_changed_at", "closed_at", "age_vs_sla", "item_list")
    fieldsets = [
        (None, {"fields": ["reference", "title", "summary", "offender_link", "item_list"]}),
        ("Triage", {"fields": ["status_badge", "closure_reason", "assignee", "severity_badge",
                               "tlp_badge", "tag_list", "merged_into", "age_vs_sla"]}),
        ("When", {"fields": ["height", "first_seen_at", "created_at", "status_changed_at",
                             "closed_at"]}),
    ]

    # --- permissions: the queue is read through the admin, written through services ------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_triage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("console.triage_case")

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("console.confirm_case")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("console.export_case")

    # --- the list ---------------------------------------------------------------------------

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Case],
                           search_term: str) -> tuple[QuerySet[Case], bool]:
        return search_cases(queryset, search_term), bool(search_term.strip())

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self.has_view_permission(request):
            views.sync_before_view()
        query = request.GET.urlencode()
        context = {**(extra_context or {}),
                   "export_query": query, "can_export": self.has_export_permission(request),
                   "can_triage": self.has_triage_permission(request)}
        return super().changelist_view(request, extra_context=context)

    @admin.display(description="case", ordering="reference")
    def reference_link(self, case: Case) -> str:
        return format_html('<a href="{}" class="cm-ref">{}</a>',
                           reverse("admin:console_case_change", args=[case.pk]), case.reference)

    @admin.display(description="status", ordering="status")
    def status_badge(self, case: Case) -> str:
        reason = f" \u00b7 {case.get_closure_reason_display()}" if case.closure_reason else ""
        return format_html('<span class="cm-badge cm-status-{}">{}{}</span>', case.status,
                           case.get_status_display(), reason)

    @admin.display(description="severity", ordering="severity_rank")
    def severity_badge(self, case: Case) -> str:
        return format_html('<span class="cm-badge cm-sev-{}">{}</span>', case.severity,
                           case.get_severity_display())

    @admin.display(description="TLP", ordering="tlp")
    def tlp_badge(self, case: Case) -> str:
        css = case.tlp.removeprefix("TLP:").replace("+", "-").lower()
        return format_html('<span class="cm-tlp cm-tlp-{}">{}</span>', css, case.tlp)

    @admin.display(description="offender")
    def offender_link(self, case: Case) -> str:
        if not case.offender_kind:
            return "\u2014"
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:console_offender", args=[case.offender_kind, case.offender_value]),
            case.offender)

    @admin.display(description="age / SLA")
    def age_vs_sla(self, case: Case) -> str:
        state = sla_state(case)
        return format_html('<span class="cm-sla cm-sla-{}" title="{}% of the SLA">{} / {}</span>',
                           state.bucket, state.used_percent, format_duration(state.age_seconds),
                           format_duration(state.sla_seconds))

    @admin.display(description="transactions")
    def transactions(self, case: Case) -> str:
        # One query per row would be N+1 on a 50-row page; the count comes from the prefetch.
        actions = list(case.actions.all())
        return format_html_join(" ", '<span class="cm-badge cm-tx-{}">{} {}</span>',
                                ((a.status, a.kind, a.status) for a in actions[:3]))

    @admin.display(description="tags")
    def tag_list(self, case: Case) -> str:
        return ", ".join(tag.name for tag in case.tags.all()) or "\u2014"

    @admin.display(description="ledger items")
    def item_list(self, case: Case) -> str:
        return format_html_join(mark_safe("<br>"), '<code>{}</code> {} (block {})',
                                ((item.kind, item.item_id, item.height)
                                 for item in case.items.all()[:50]))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Case]:
        return super().get_queryset(request).prefetch_related("actions")

    # --- the case page ----------------------------------------------------------------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if self.has_view_permission(request):
            views.sync_before_view()  # settles the case's transactions committed since
        case = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if case is not None:
            user, sla = request.user, sla_state(case)
            context.update({
                "case": case, "timeline": case_timeline(case), "sla": sla,
                "sla_age": format_duration(sla.age_seconds),
                "sla_limit": format_duration(sla.sla_seconds),
                "allowed": TRANSITIONS[case.status],
                "can_triage": user.has_perm("console.triage_case"),
                "can_confirm": user.has_perm("console.confirm_case"),
                "can_reopen": user.has_perm("console.reopen_case"),
                "can_release": user.has_perm("console.release_offender"),
                "policy_entity": case.offender_kind in ("ip", "cidr", "host", "account",
                                                        "other"),
                "is_open": case.status in OPEN_STATUSES,
                "confirm_form": forms.ConfirmForm(initial={
                    "quarantine": True, "hours": console_config().quarantine_hours}),
                "dismiss_form": forms.DismissForm(), "reopen_form": forms.ReopenForm(),
                "note_form": forms.NoteForm(), "tags_form": forms.TagsForm(),
                "assign_form": forms.AssignForm(initial={"assignee": case.assignee_id}),
                "classify_form": forms.ClassifyForm(initial={"severity": case.severity,
                                                             "tlp": case.tlp}),
                "release_form": forms.ReleaseForm(),
                "actions_list": list(case.actions.order_by("-requested_at")),
            })
        return super().change_view(request, object_id, form_url, extra_context=context)

    # --- bulk actions (each calls a service per case) ---------------------------------------

    def _bulk(self, request: HttpRequest, queryset: QuerySet[Case], service: Any,
              done: str) -> None:
        _run_bulk(self, request, queryset, service, done)

    @admin.action(description="Assign to me", permissions=["triage"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        count = services.do_assign(case_ids=list(queryset.values_list("pk", flat=True)),
                                   acting_user=request.user, assignee=request.user,
                                   request_id=views.request_id_of(request))
        self.message_user(request, f"{count} case(s) assigned to you.", messages.SUCCESS)

    @admin.action(description="Unassign", permissions=["triage"])
    def unassign(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        count = services.do_assign(case_ids=list(queryset.values_list("pk", flat=True)),
                                   acting_user=request.user, assignee=None,
                                   request_id=views.request_id_of(request))
        self.message_user(request, f"{count} case(s) unassigned.", messages.SUCCESS)

    @admin.action(description="Start triage", permissions=["triage"])
    def start_triage(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._bulk(request, queryset, lambda case: services.do_start_triage(
            case_id=case.pk, acting_user=request.user,
            request_id=views.request_id_of(request)), "Triaging")

    @admin.action(description="Confirm and quarantine the offender (through consensus)",
                  permissions=["confirm"])
    def confirm_and_quarantine(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._bulk(request, queryset, lambda case: services.do_confirm(
            case_id=case.pk, acting_user=request.user, quarantine=True,
            request_id=views.request_id_of(request)),
            "Confirmed; quarantine transactions pending")

    @admin.action(description="Confirm without quarantine", permissions=["confirm"])
    def confirm_only(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._bulk(request, queryset, lambda case: services.do_confirm(
            case_id=case.pk, acting_user=request.user, quarantine=False,
            request_id=views.request_id_of(request)), "Confirmed")

    def _dismiss(self, request: HttpRequest, queryset: QuerySet[Case], reason: str) -> None:
        self._bulk(request, queryset, lambda case: services.do_dismiss(
            case_id=case.pk, acting_user=request.user, reason=reason,
            request_id=views.request_id_of(request)), f"Dismissed ({reason})")

    @admin.action(description="Dismiss: false positive", permissions=["triage"])
    def dismiss_false_positive(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._dismiss(request, queryset, ClosureReason.FALSE_POSITIVE)

    @admin.action(description="Dismiss: duplicate", permissions=["triage"])
    def dismiss_duplicate(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._dismiss(request, queryset, ClosureReason.DUPLICATE)

    @admin.action(description="Dismiss: out of scope", permissions=["triage"])
    def dismiss_out_of_scope(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        self._dismiss(request, queryset, ClosureReason.OUT_OF_SCOPE)

    @admin.action(description="Merge selected into the oldest", permissions=["triage"])
    def merge_into_oldest(self, request: HttpRequest, queryset: QuerySet[Case]) -> None:
        ids = list(queryset.order_by("created_at", "reference").values_list("pk", flat=True))
        if len(ids) < 2:
            self.message_user(request, "Select two or more cases to merge.", messages.WARNING)
            return
        try:
            outcome = services.do_merge(primary_id=ids[0], duplicate_ids=ids[1:],
                                        acting_user=request.user,
                                        request_id=views.request_id_of(request))
        except ConsoleError as error:
            self.message_user(request, f"Refused: {error}", messages.ERROR)
            return
        self.message_user(request, f"Merged {len(ids) - 1} case(s) into "
                          f"{outcome.case.reference}.", messages.SUCCESS)

    @admin.action(description="Export selected as CSV", permissions=["export"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Case]) -> HttpResponse:
        return views.export_response(queryset, "csv")

    @admin.action(description="Export selected as JSON", permissions=["export"])
    def export_json(self, request: HttpRequest, queryset: QuerySet[Case]) -> HttpResponse:
        return views.export_response(queryset, "json")

    @admin.action(description="Export confirmed indicators as STIX 2.1", permissions=["export"])
    def export_stix(self, request: HttpRequest, queryset: QuerySet[Case]) -> HttpResponse:
        return views.export_response(queryset, "stix")

    # --- extra pages ----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(partial(views.dashboard, model_admin=self)),
                 name="console_dashboard"),
            path("dashboard/data/", wrap(views.dashboard_json), name="console_dashboard_data"),
            path("export/", wrap(partial(views.export_filtered, model_admin=self)),
                 name="console_case_export"),
            path("sync/", wrap(views.sync_now), name="console_sync"),
            path("2fa/", views.staff_only(partial(views.second_factor, model_admin=self)),
                 name="console_2fa"),
            path("offender/<str:kind>/<path:value>/do/<str:operation>/",
                 wrap(views.offender_operation), name="console_offender_operation"),
            path("offender/<str:kind>/<path:value>/",
                 wrap(partial(views.offender, model_admin=self)), name="console_offender"),
            path("<uuid:object_id>/do/<str:operation>/", wrap(views.case_operation),
                 name="console_case_operation"),
            *super().get_urls(),
        ]


# Two-factor login on the default admin site: the code field on the login form, and no admin
# page for a user who needs a second factor until the session was verified with one.
admin.site.login_form = SecondFactorLoginForm
admin.site.has_permission = admin_permission(  # type: ignore[method-assign,assignment]
    admin.site.has_permission)


@admin.register(CaseAction)
class CaseActionAdmin(_CaseAdminBase):
    """Every signed transaction the console asked for, and where it is (read-only)."""

    list_display = ("requested_at", "kind", "entity_link", "status", "committed_height",
                    "tx_id", "requested_by_name", "case_link")
    list_filter = ("status", "kind")
    search_fields = ("=tx_id", "=entity_value", "requested_by_name")
    list_select_related = ("case",)
    ordering = ("-requested_at",)
    paginator = BoundedCountPaginator
    show_full_result_count = False
    exclude = ("wire",)
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("console.view_case")

    @admin.display(description="entity")
    def entity_link(self, action: CaseAction) -> str:
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:console_offender", args=[action.entity_kind, action.entity_value]),
            action.entity)

    @admin.display(description="case")
    def case_link(self, action: CaseAction) -> str:
        if action.case is None:
            return "\u2014"
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:console_case_change", args=[action.case_id]), action.case.reference)


@admin.register(Tag)
class TagAdmin(_CaseAdminBase):
    list_display = ("name", "kind")
    list_filter = ("kind",)
    search_fields = ("name",)
    ordering = ("kind", "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tags are created by tagging a case (validated there)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
