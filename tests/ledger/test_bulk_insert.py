"""Both bulk insert paths (binary COPY for PostgreSQL, unnest arrays for CockroachDB) write
exactly what the ORM would, for every column type the commit uses (run on PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import transaction

from apps.ledger.bulk_insert import copy_rows, unnest_rows
from apps.ledger.models import OutboxMessage
from apps.ledger.models import Transaction as TransactionRow

pytestmark = [
    pytest.mark.integration, pytest.mark.django_db(transaction=True),
]

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


@pytest.mark.parametrize("insert", [copy_rows, unnest_rows])
def test_rows_round_trip_through_each_path(insert) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        insert(TransactionRow, ("block_height", "idx", "tx_id", "kind", "payload", "content_hash",
                                "producer_id", "created_at", "signature", "public_key",
                                "is_replay"),
               [(7, 0, b"\x00" * 32, "policy", b"\x00\xff" * 40, b"\x01" * 32, "ai-1", NOW,
                 b"s" * 64, b"k" * 32, False),
                (7, 1, b"\x02" * 32, "opaque", b"", b"\x03" * 32, "", None, b"", b"", True)])
        insert(OutboxMessage, ("id", "dedupe_id", "topic", "key", "payload", "height",
                               "position", "created_at"),
               [(uuid.UUID(int=5), "block:7:0", "control.commits.v1", "7",
                 {"height": 7, "hash": "ab", "nested": [1, None, "x"]}, 7, 0, NOW)])
    first, second = TransactionRow.objects.order_by("idx")
    assert (bytes(first.payload), first.created_at, first.is_replay) == (
        b"\x00\xff" * 40, NOW, False)
    assert (second.kind, second.created_at, bytes(second.payload), second.is_replay) == (
        "opaque", None, b"", True)
    message = OutboxMessage.objects.get()
    assert message.payload == {"height": 7, "hash": "ab", "nested": [1, None, "x"]}
    assert message.id == uuid.UUID(int=5) and message.sent_at is None

