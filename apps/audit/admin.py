"""Read-only admin for the audit chain: nobody adds, changes or deletes entries here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property

from apps.audit.models import AuditEntry, AuditHead

if TYPE_CHECKING:  # generic only in django-stubs, not at runtime
    _PaginatorBase = Paginator[Any]
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _PaginatorBase = Paginator
    _ModelAdminBase = admin.ModelAdmin


class BoundedCountPaginator(_PaginatorBase):
    """Pages without ``COUNT(*)`` over the whole table (slow on a long chain).

    Counts at most ``COUNT_CAP`` rows (``SELECT COUNT(*) FROM (... LIMIT cap)``), so the cost is
    bounded however long the chain grows; older entries are reached by search and filters.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return int(self.object_list.order_by()[: self.COUNT_CAP].count())  # type: ignore[attr-defined]


class ReadOnlyAdmin(_ModelAdminBase):
    paginator = BoundedCountPaginator
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("seq", "timestamp", "actor", "action", "target", "outcome", "request_id",
                    "key_id")
    list_filter = ("outcome",)
    search_fields = ("=request_id", "=actor", "action", "target")
    ordering = ("-seq",)


@admin.register(AuditHead)
class AuditHeadAdmin(ReadOnlyAdmin):
    list_display = ("seq", "entry_hash", "key_id", "signed_at")
    ordering = ("-seq",)
