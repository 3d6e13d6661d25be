"""Read-only admin for committed blocks and the outbox (ledger rows are never edited).

Transactions have a composite primary key, which the Django admin does not support; they are
shown inline on their block instead (and served by the API).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from apps.audit.admin import ReadOnlyAdmin
from apps.ledger.models import Block, OutboxMessage, Transaction

MAX_INLINE_TRANSACTIONS = 200


def short_hex(value: bytes | memoryview | None, length: int = 16) -> str:
    return "" if value is None else bytes(value).hex()[:length]


@admin.register(Block)
class BlockAdmin(ReadOnlyAdmin):
    list_display = ("height", "hash_hex", "epoch", "view", "proposer_id", "tx_count",
                    "committed_at")
    search_fields = ("=height", "proposer_id")
    ordering = ("-height",)
    exclude = ("block_hash", "parent_hash", "tx_root", "state_root", "result_state_root",
               "validator_set_hash", "justify_qc", "qc", "next_validators", "payload")
    readonly_fields = ("hash_hex", "parent_hex", "tx_root_hex", "state_root_hex",
                       "result_state_root_hex", "transactions")

    @admin.display(description="hash")
    def hash_hex(self, block: Block) -> str:
        return short_hex(block.block_hash, 64)

    @admin.display(description="parent hash")
    def parent_hex(self, block: Block) -> str:
        return short_hex(block.parent_hash, 64)

    @admin.display(description="tx root")
    def tx_root_hex(self, block: Block) -> str:
        return short_hex(block.tx_root, 64)

    @admin.display(description="state root (parent's)")
    def state_root_hex(self, block: Block) -> str:
        return short_hex(block.state_root, 64)

    @admin.display(description="state root after this block")
    def result_state_root_hex(self, block: Block) -> str:
        return short_hex(block.result_state_root, 64)

    @admin.display(description=f"transactions (first {MAX_INLINE_TRANSACTIONS})")
    def transactions(self, block: Block) -> str:
        rows = (Transaction.objects.filter(block_height=block.height).order_by("idx")
                .values_list("idx", "tx_id", "kind", "producer_id", "is_replay")
                [:MAX_INLINE_TRANSACTIONS])
        return format_html_join(
            "", "<div>{} {} {} {}{}</div>",
            ((idx, short_hex(tx_id, 64), kind, producer, " (replay)" if replay else "")
             for idx, tx_id, kind, producer, replay in rows))


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("height", "position", "topic", "key", "created_at", "sent_at")
    list_filter = ("topic",)
    search_fields = ("=dedupe_id", "=key")
    ordering = ("-height", "position")
