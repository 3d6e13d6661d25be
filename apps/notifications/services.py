"""Entry points for other apps: ask for the outbox to be drained once a commit is durable."""

from __future__ import annotations

from django.db import transaction

from apps.notifications.tasks import enqueue_drain

__all__ = ["drain_after_commit"]


def drain_after_commit(*, using: str = "default") -> None:
    """Enqueue an outbox drain when the current transaction commits (nothing if it rolls back).

    The ledger calls this inside the block-commit transaction after writing outbox rows; the
    periodic sweep covers a trigger lost to a crash between the commit and the enqueue.
    """
    transaction.on_commit(enqueue_drain, using=using)
