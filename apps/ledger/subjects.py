"""What a transaction is about, as stored beside it for the API's filters.

* ``offender``: the entity a security event accuses (``offender``), a policy change targets
  (``entity``), or the validator an equivocation proves faulty. Entities are written
  ``kind:value`` (``ip:198.51.100.7``) and validators by their bare id, exactly as the
  evidence table's ``offender_id`` is, so one offender string finds both.
* ``severity``: a security event's severity (1..10).

Kinds without one (governance, audit anchors, artifact evidence, opaque payloads) store NULL.
Derived from the signed transaction alone, never from execution results: the columns describe
what the transaction says, and a replayed or ignored transaction says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connections, models
from django.db.models import Q

from cybermesh.protocol.txs import (
    Evidence,
    PolicyChange,
    SecurityEvent,
    Transaction,
    TxRejected,
    decode_transaction,
)

# Column sizes: an entity's text form is at most 256 bytes of value plus its kind prefix.
MAX_OFFENDER_LENGTH = 300


@dataclass(frozen=True, slots=True)
class Subject:
    offender_id: str | None = None
    severity: int | None = None


NO_SUBJECT = Subject()


def subject_of(transaction: Transaction) -> Subject:
    """The offender and severity a transaction names (module docstring)."""
    payload = transaction.payload
    if isinstance(payload, SecurityEvent):
        return Subject(str(payload.offender), payload.severity)
    if isinstance(payload, PolicyChange):
        return Subject(str(payload.entity))
    if isinstance(payload, Evidence) and payload.equivocation is not None:
        return Subject(payload.equivocation.validator_id)
    return NO_SUBJECT


def subject_of_wire(encoded: bytes) -> Subject:
    """The subject of a stored transaction's wire bytes (no subject if they do not decode as
    a CyberMesh transaction: such rows are stored as ``opaque``)."""
    try:
        transaction = decode_transaction(encoded, verify=False)
    except TxRejected:
        return NO_SUBJECT
    return subject_of(transaction)


# Only these kinds can name a subject; the backfill reads no other rows.
KINDS_WITH_SUBJECT = ("security_event", "policy", "evidence")


def backfill_subjects(transaction_model: type[models.Model], *, using: str = "default",
                      batch_size: int = 2000) -> int:
    """Fill ``offender_id`` and ``severity`` of stored rows from their payloads (the
    migration that added the columns runs this); returns how many rows named a subject.

    Walks the rows of :data:`KINDS_WITH_SUBJECT` in primary-key pages, so memory stays
    bounded on a ledger of millions of rows, and is idempotent: run again, it writes the
    same values."""
    manager = transaction_model._default_manager.db_manager(using)
    table = transaction_model._meta.db_table
    update = (f"UPDATE {table} SET offender_id = %s, severity = %s "  # noqa: S608 - our table
              "WHERE block_height = %s AND idx = %s")
    after_height, after_index = -1, -1
    written = 0
    while True:
        page = list(manager.filter(kind__in=KINDS_WITH_SUBJECT)
                    .filter(Q(block_height__gt=after_height)
                            | Q(block_height=after_height, idx__gt=after_index))
                    .order_by("block_height", "idx")
                    .values_list("block_height", "idx", "payload")[:batch_size])
        if not page:
            return written
        values = []
        for height, index, payload in page:
            subject = subject_of_wire(bytes(payload))
            if subject != NO_SUBJECT:
                values.append((subject.offender_id, subject.severity, height, index))
        if values:
            with connections[using].cursor() as cursor:
                cursor.executemany(update, values)
        written += len(values)
        after_height, after_index = page[-1][0], page[-1][1]
