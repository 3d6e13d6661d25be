"""Read-only admin for the mempool: rows change only through admission and the services.

(``ProducerNonce`` has a composite primary key, which Django's admin cannot show.)
"""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin import ReadOnlyAdmin
from apps.mempool.models import MempoolTransaction, PendingDeadLetter, PoolStats, RateBucket


@admin.display(description="tx id")
def tx_id_hex(obj: MempoolTransaction | PendingDeadLetter) -> str:
    return bytes(obj.tx_id).hex()


@admin.register(MempoolTransaction)
class MempoolTransactionAdmin(ReadOnlyAdmin):
    list_display = (tx_id_hex, "kind", "producer_id", "weight", "priority", "created_at_ms",
                    "expires_at_ms", "size_bytes", "source")
    list_filter = ("kind",)
    search_fields = ("=producer_id",)
    exclude = ("wire",)


@admin.register(RateBucket)
class RateBucketAdmin(ReadOnlyAdmin):
    list_display = ("producer_id", "tokens_milli", "refilled_at_ms")


@admin.register(PoolStats)
class PoolStatsAdmin(ReadOnlyAdmin):
    list_display = ("name", "tx_count", "total_bytes")


@admin.register(PendingDeadLetter)
class PendingDeadLetterAdmin(ReadOnlyAdmin):
    """Evicted or expired transactions the ingest worker has not yet sent to the DLQ: a row
    that stays here for long means no ingest worker is draining (or the DLQ is failing)."""

    list_display = (tx_id_hex, "reason", "kind", "source", "removed_at_ms", "detail")
    list_filter = ("reason", "kind")
    exclude = ("wire",)
