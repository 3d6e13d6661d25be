"""Read-only admin for state roots and snapshots (nodes and values are served by queries)."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin import ReadOnlyAdmin
from apps.ledger.admin import short_hex
from apps.state.models import PruneMark, StateSnapshot, StateVersion


@admin.register(StateVersion)
class StateVersionAdmin(ReadOnlyAdmin):
    list_display = ("version", "root", "created_at")
    search_fields = ("=version",)
    ordering = ("-version",)
    exclude = ("root_hash",)
    readonly_fields = ("root",)

    @admin.display(description="root")
    def root(self, row: StateVersion) -> str:
        return short_hex(row.root_hash, 64)


@admin.register(StateSnapshot)
class StateSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("version_height", "root", "created_at")
    ordering = ("-version_height",)
    exclude = ("state_root",)
    readonly_fields = ("root",)

    @admin.display(description="state root")
    def root(self, row: StateSnapshot) -> str:
        return short_hex(row.state_root, 64)


@admin.register(PruneMark)
class PruneMarkAdmin(ReadOnlyAdmin):
    list_display = ("name", "min_retained_version", "updated_at")
