"""Read-only admin for committed evidence."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin import ReadOnlyAdmin
from apps.evidence.models import Evidence
from apps.ledger.admin import short_hex


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ("evidence_hex", "kind", "offender_id", "view", "height", "status",
                    "committed_height")
    list_filter = ("kind", "status")
    search_fields = ("=offender_id", "=reporter_id")
    ordering = ("-committed_height",)
    exclude = ("evidence_id", "proof", "signature")
    readonly_fields = ("evidence_hex",)

    @admin.display(description="evidence id")
    def evidence_hex(self, evidence: Evidence) -> str:
        return short_hex(evidence.evidence_id, 64)
