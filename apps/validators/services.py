"""Writes to the validators table: the genesis set, epoch changes, reputation updates.

All three run inside the caller's transaction (the block commit, or the node's bootstrap), so
the table always says what the ledger committed up to some height, never half of a block.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from apps.ledger.records import ValidatorUpdate
from apps.validators.models import Validator
from cybermesh.protocol.validator_set import ValidatorSet


def _require_transaction(using: str) -> None:
    if not connections[using].in_atomic_block:
        raise transaction.TransactionManagementError("validator writes need a transaction")


def apply_validator_set(*, validator_set: ValidatorSet, height: int,
                        now: datetime | None = None, using: str = "default") -> None:
    """Make ``validator_set`` the active set from ``height`` on (members active with their
    key, power and address; everyone else inactive). Reputation is kept across epochs."""
    _require_transaction(using)
    now = now or timezone.now()
    rows = Validator.objects.using(using)
    members = {validator.validator_id: validator for validator in validator_set}
    rows.filter(active=True).exclude(validator_id__in=list(members)).update(
        active=False, updated_height=height, updated_at=now)
    existing = {row.validator_id: row
                for row in rows.select_for_update().filter(validator_id__in=list(members))}
    for validator_id, member in sorted(members.items()):
        row = existing.get(validator_id)
        if row is None:
            rows.create(validator_id=validator_id, public_key=member.public_key,
                        power=member.power, address=member.address, active=True,
                        joined_epoch=validator_set.epoch, joined_height=height,
                        updated_height=height, updated_at=now)
            continue
        if not row.active:
            row.joined_epoch, row.joined_height = validator_set.epoch, height
        row.public_key, row.power, row.address = member.public_key, member.power, member.address
        row.active, row.updated_height, row.updated_at = True, height, now
        row.save(using=using)


def apply_validator_updates(*, updates: Sequence[ValidatorUpdate], height: int,
                            now: datetime | None = None, using: str = "default") -> int:
    """Record reputation/activity from the executor; unknown validator ids are ignored (the
    executor also tracks validators that have not joined yet). Returns rows changed."""
    _require_transaction(using)
    now = now or timezone.now()
    changed = 0
    for update in updates:
        if isinstance(update.reputation, bool) or not isinstance(update.reputation, int):
            raise TypeError("validator reputation must be an integer (basis points)")
        fields: dict[str, object] = {"reputation": update.reputation,
                                     "updated_height": height, "updated_at": now}
        if update.active is not None:
            fields["active"] = update.active
        changed += Validator.objects.using(using).filter(
            validator_id=update.validator_id).update(**fields)
    return changed
