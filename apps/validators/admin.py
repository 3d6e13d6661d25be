"""Read-only admin for validators: the set changes only through committed governance."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.admin import ReadOnlyAdmin
from apps.ledger.admin import short_hex
from apps.validators.models import Validator


@admin.register(Validator)
class ValidatorAdmin(ReadOnlyAdmin):
    list_display = ("validator_id", "active", "power", "reputation", "address", "joined_epoch",
                    "updated_height")
    list_filter = ("active",)
    search_fields = ("validator_id", "address")
    ordering = ("validator_id",)
    exclude = ("public_key",)
    readonly_fields = ("key",)

    @admin.display(description="public key")
    def key(self, validator: Validator) -> str:
        return short_hex(validator.public_key, 64)
