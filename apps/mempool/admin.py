"""Read-only admin for the mempool: rows change only through admission and the services.

(``ProducerNonce`` has a composite primary key, which Django's admin cannot show.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.http import HttpRequest
from django.utils.functional import cached_property

from apps.mempool.models import MempoolTransaction, PoolStats, RateBucket

if TYPE_CHECKING:  # generic only in django-stubs, not at runtime
    _PaginatorBase = Paginator[Any]
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _PaginatorBase = Paginator
    _ModelAdminBase = admin.ModelAdmin


class CappedCountPaginator(_PaginatorBase):
    """Counts at most ``COUNT_CAP`` rows instead of ``COUNT(*)`` over a large pool."""

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        return int(self.object_list.order_by()[: self.COUNT_CAP].count())  # type: ignore[attr-defined]


class ReadOnlyMempoolAdmin(_ModelAdminBase):
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MempoolTransaction)
class MempoolTransactionAdmin(ReadOnlyMempoolAdmin):
    list_display = ("tx_id_hex", "kind", "producer_id", "weight", "priority", "created_at_ms",
                    "expires_at_ms", "size_bytes", "source")
    list_filter = ("kind",)
    search_fields = ("=producer_id",)
    exclude = ("wire",)

    @admin.display(description="tx id")
    def tx_id_hex(self, obj: MempoolTransaction) -> str:
        return bytes(obj.tx_id).hex()


@admin.register(RateBucket)
class RateBucketAdmin(ReadOnlyMempoolAdmin):
    list_display = ("producer_id", "tokens_milli", "refilled_at_ms")


@admin.register(PoolStats)
class PoolStatsAdmin(ReadOnlyMempoolAdmin):
    list_display = ("name", "tx_count", "total_bytes")
