"""Validators, read-only (the set changes only through committed governance): power,
reputation, health and last-seen as this node's peer links report them, peer score,
quarantine in the latest state, and the governance changes pending for the next epoch."""

from __future__ import annotations

import contextvars
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html

from apps.audit.admin import ReadOnlyAdmin
from apps.ledger.admin import short_hex
from apps.validators.models import REPUTATION_SCALE, Validator

# The cluster view is computed once per changelist request and read by the row columns.
_CLUSTER: contextvars.ContextVar[Any] = contextvars.ContextVar("validators_cluster")


def _health(validator: Validator) -> Any:
    from apps.console.explorer import cluster_view

    view = _CLUSTER.get(None) or cluster_view([validator.validator_id])
    return view.health.get(validator.validator_id)


@admin.register(Validator)
class ValidatorAdmin(ReadOnlyAdmin):
    list_display = ("validator_id", "active", "power", "reputation_percent", "health",
                    "peer_score", "last_seen", "quarantine", "address", "joined_epoch",
                    "updated_height")
    list_filter = ("active",)
    search_fields = ("validator_id", "address")
    ordering = ("validator_id",)
    change_list_template = "admin/validators/validator/change_list.html"
    exclude = ("public_key",)
    readonly_fields = ("key", "reputation_percent", "health", "peer_score", "last_seen",
                       "quarantine")

    def changelist_view(self, request: HttpRequest,
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        from apps.console.explorer import cluster_view, validator_ids

        view = cluster_view(validator_ids())
        token = _CLUSTER.set(view)
        try:
            response = super().changelist_view(request, extra_context={
                **(extra_context or {}), "cluster": view})
            render = getattr(response, "render", None)
            if render is not None:
                render()  # while the view is set: the columns read it
            return response
        finally:
            _CLUSTER.reset(token)

    @admin.display(description="public key")
    def key(self, validator: Validator) -> str:
        return short_hex(validator.public_key, 64)

    @admin.display(description="reputation", ordering="reputation")
    def reputation_percent(self, validator: Validator) -> str:
        return f"{validator.reputation * 100 / REPUTATION_SCALE:.2f}%"

    @admin.display(description="health")
    def health(self, validator: Validator) -> str:
        health = _health(validator)
        if health is None or health.connected is None:
            return format_html('<span class="cm-badge">{}</span>', "unknown")
        if health.is_self:
            return format_html('<span class="cm-badge cm-tx-committed">{}</span>', "this node")
        if health.connected:
            return format_html('<span class="cm-badge cm-tx-committed">{}</span>', "connected")
        return format_html('<span class="cm-badge cm-tx-rejected">{}</span>', "disconnected")

    @admin.display(description="peer score")
    def peer_score(self, validator: Validator) -> str:
        health = _health(validator)
        return "\u2014" if health is None or health.peer_score is None \
            else f"{health.peer_score:.2f}"

    @admin.display(description="last seen")
    def last_seen(self, validator: Validator) -> str:
        health = _health(validator)
        return "\u2014" if health is None or health.last_seen is None \
            else health.last_seen.strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="quarantine")
    def quarantine(self, validator: Validator) -> str:
        health = _health(validator)
        if health is None or health.quarantined_until is None:
            return "\u2014"
        return format_html('<span class="cm-badge cm-tx-rejected">until {} ({})</span>',
                           health.quarantined_until.strftime("%Y-%m-%d %H:%M"),
                           health.quarantine_reason)
