"""The ledger explorer: committed blocks and transactions, read-only for everyone.

The ledger changes only through consensus, so nobody (superusers included) can add, change or
delete a block, a transaction or an outbox row here. A block's page shows its verification
status, recomputed from the stored rows (``apps.console.explorer.block_checks``); transactions
(composite primary key, which the admin's model pages cannot serve) have their own list, keyset
paged by ``(block_height, idx)``, and a page each with the decoded payload, the signature
re-verified and the inclusion proof against the block's tx root.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from apps.audit.admin import ReadOnlyAdmin
from apps.ledger.models import Block, OutboxMessage, Transaction
from apps.ledger.rows import decode_qc

MAX_INLINE_TRANSACTIONS = 200
TX_KINDS = ("security_event", "evidence", "policy", "governance", "audit_anchor")


def short_hex(value: bytes | memoryview | None, length: int = 16) -> str:
    return "" if value is None else bytes(value).hex()[:length]


def _tx_link(tx_id: bytes | memoryview, length: int = 64) -> str:
    value = bytes(tx_id).hex()
    return format_html('<a href="{}"><code>{}</code></a>',
                       reverse("admin:ledger_transaction_detail", args=[value]), value[:length])


@admin.register(Block)
class BlockAdmin(ReadOnlyAdmin):
    list_display = ("height", "hash_hex", "epoch", "view", "proposer_id", "tx_count",
                    "block_time", "committed_at")
    search_fields = ("=height", "proposer_id")
    ordering = ("-height",)
    change_list_template = "admin/ledger/block/change_list.html"
    change_form_template = "admin/ledger/block/change_form.html"
    exclude = ("block_hash", "parent_hash", "tx_root", "state_root", "result_state_root",
               "validator_set_hash", "justify_qc", "qc", "next_validators", "payload")
    readonly_fields = ("hash_hex", "parent_link", "tx_root_hex", "state_root_hex",
                       "result_state_root_hex", "validator_set_hex", "block_time",
                       "commit_qc", "justify", "transactions")

    def get_search_results(self, request: HttpRequest, queryset: Any,
                           search_term: str) -> tuple[Any, bool]:
        """A height, a proposer, or a block hash (64 hex digits: the unique hash index)."""
        term = search_term.strip().lower()
        if len(term) == 64 and all(char in "0123456789abcdef" for char in term):
            return queryset.filter(block_hash=bytes.fromhex(term)), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="hash")
    def hash_hex(self, block: Block) -> str:
        return short_hex(block.block_hash, 64)

    @admin.display(description="block time", ordering="height")
    def block_time(self, block: Block) -> str:
        return block.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    @admin.display(description="parent")
    def parent_link(self, block: Block) -> str:
        if block.height == 0:
            return short_hex(block.parent_hash, 64)
        return format_html('<a href="{}"><code>{}</code></a> (block {})',
                           reverse("admin:ledger_block_change", args=[block.height - 1]),
                           short_hex(block.parent_hash, 64), block.height - 1)

    @admin.display(description="tx root")
    def tx_root_hex(self, block: Block) -> str:
        return short_hex(block.tx_root, 64)

    @admin.display(description="state root (parent's)")
    def state_root_hex(self, block: Block) -> str:
        return short_hex(block.state_root, 64)

    @admin.display(description="state root after this block")
    def result_state_root_hex(self, block: Block) -> str:
        return short_hex(block.result_state_root, 64)

    @admin.display(description="validator set hash")
    def validator_set_hex(self, block: Block) -> str:
        return short_hex(block.validator_set_hash, 64)

    @staticmethod
    def _qc(data: bytes | memoryview) -> str:
        try:
            qc = decode_qc(data)
        except Exception as error:  # noqa: BLE001 - shown as what it is: an undecodable QC
            return f"undecodable: {error}"
        signers = ", ".join(validator for validator, _ in qc.signatures) or "none (root QC)"
        return f"epoch {qc.epoch}, view {qc.view}, height {qc.height}, block " \
               f"{qc.block_id.hex()[:16]}\u2026; signed by {signers}"

    @admin.display(description="commit QC")
    def commit_qc(self, block: Block) -> str:
        return self._qc(block.qc)

    @admin.display(description="justify QC (certifies the parent)")
    def justify(self, block: Block) -> str:
        return self._qc(block.justify_qc)

    @admin.display(description=f"transactions (first {MAX_INLINE_TRANSACTIONS})")
    def transactions(self, block: Block) -> str:
        rows = (Transaction.objects.filter(block_height=block.height).order_by("idx")
                .values_list("idx", "tx_id", "kind", "producer_id", "is_replay")
                [:MAX_INLINE_TRANSACTIONS])
        return format_html_join(
            "", "<div>{} {} {} {}{}</div>",
            ((idx, _tx_link(tx_id), kind, producer, " (replay)" if replay else "")
             for idx, tx_id, kind, producer, replay in rows))

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from apps.console.explorer import block_checks

        block = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if block is not None:
            context["checks"] = block_checks(block)
            context["verified"] = all(check.ok is not False for check in context["checks"])
        return super().change_view(request, object_id, form_url, extra_context=context)

    # --- transactions ---------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("transactions/", wrap(self.transactions_view),
                 name="ledger_transaction_changelist"),
            path("transactions/<str:tx_id>/", wrap(self.transaction_view),
                 name="ledger_transaction_detail"),
            *super().get_urls(),
        ]

    def transactions_view(self, request: HttpRequest) -> HttpResponse:
        from apps.console.explorer import transactions_page

        if not self.has_view_permission(request):
            raise Http404
        kind = request.GET.get("kind", "")
        producer = request.GET.get("producer", "")[:128]
        before = None
        raw = request.GET.get("before", "")
        if raw:
            try:
                height, index = (int(part) for part in raw.split(".", 1))
                before = (height, index)
            except ValueError:
                raise Http404 from None
        rows = transactions_page(kind=kind if kind in TX_KINDS else "", producer=producer,
                                 before=before, limit=50)
        next_before = f"{rows[-1].block_height}.{rows[-1].idx}" if len(rows) == 50 else ""
        context = {**self.admin_site.each_context(request), "title": "Transactions",
                   "opts": self.opts, "rows": rows, "kinds": TX_KINDS, "kind": kind,
                   "producer": producer, "next_before": next_before}
        return TemplateResponse(request, "console/transactions.html", context)

    def transaction_view(self, request: HttpRequest, tx_id: str) -> HttpResponse:
        from apps.console.explorer import transaction_view

        if not self.has_view_permission(request):
            raise Http404
        try:
            raw = bytes.fromhex(tx_id)
        except ValueError:
            raise Http404 from None
        view = transaction_view(raw) if len(raw) == 32 else None
        if view is None:
            raise Http404("no committed transaction with this id")
        import json

        governance = None
        if view.row.kind == "governance":
            from apps.governance.services import transaction_status

            governance = transaction_status(raw).to_json()
        context = {**self.admin_site.each_context(request), "opts": self.opts,
                   "governance": governance,
                   "title": f"Transaction {tx_id[:16]}\u2026", "view": view, "tx_id": tx_id,
                   "payload_json": json.dumps(view.payload, indent=2, sort_keys=True),
                   "verified": all(check.ok is not False for check in view.checks)}
        return TemplateResponse(request, "console/transaction.html", context)


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    list_display = ("height", "position", "topic", "key", "created_at", "sent_at")
    list_filter = ("topic",)
    search_fields = ("=dedupe_id", "=key")
    ordering = ("-height", "position")
