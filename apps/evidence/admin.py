"""Committed evidence, read-only: each item links to its transaction page (the evidence id is
the evidence transaction's id: signature and inclusion re-checked there), its triage case and
its offender's page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.audit.admin import ReadOnlyAdmin
from apps.evidence.models import Evidence
from apps.ledger.admin import short_hex


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ("evidence_link", "kind", "offender_link", "reporter_id", "status",
                    "committed_height", "case_link")
    list_display_links = None
    list_filter = ("kind", "status")
    search_fields = ("=offender_id", "=reporter_id")
    search_help_text = "Offender (ip:1.2.3.4 or a validator id), reporter, or an evidence id"
    ordering = ("-committed_height", "evidence_id")
    exclude = ("evidence_id", "proof", "signature")
    readonly_fields = ("evidence_hex",)

    def get_search_results(self, request: HttpRequest, queryset: Any,
                           search_term: str) -> tuple[Any, bool]:
        term = search_term.strip().lower()
        if len(term) == 64 and all(char in "0123456789abcdef" for char in term):
            return queryset.filter(evidence_id=bytes.fromhex(term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="evidence id")
    def evidence_hex(self, evidence: Evidence) -> str:
        return short_hex(evidence.evidence_id, 64)

    @admin.display(description="evidence (transaction)")
    def evidence_link(self, evidence: Evidence) -> str:
        value = short_hex(evidence.evidence_id, 64)
        return format_html('<a href="{}"><code>{}</code></a>',
                           reverse("admin:ledger_transaction_detail", args=[value]), value[:24])

    @admin.display(description="offender", ordering="offender_id")
    def offender_link(self, evidence: Evidence) -> str:
        if not evidence.offender_id:
            return "\u2014 (matched no known event)"
        kind, separator, value = evidence.offender_id.partition(":")
        if not separator:
            kind, value = "validator", evidence.offender_id
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:console_offender", args=[kind, value]), evidence.offender_id)

    @admin.display(description="case")
    def case_link(self, evidence: Evidence) -> str:
        from apps.console.models import CaseItem

        item = (CaseItem.objects.filter(kind="evidence", item_id=short_hex(
            evidence.evidence_id, 64)).select_related("case").first())
        if item is None:
            return "\u2014"
        return format_html('<a href="{}">{}</a>', reverse(
            "admin:console_case_change", args=[item.case_id]), item.case.reference)
