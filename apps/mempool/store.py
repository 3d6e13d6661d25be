"""The admission hot path in SQL: set lookups and inserts of a whole batch in one statement.

The ORM spells ``tx_id__in=[500 ids]`` and ``bulk_create(500 rows)`` as statements with one
placeholder per value, which the driver parses and binds value by value (most of the cost of
a batch). Here each column travels as ONE array parameter: ``= ANY(%s)`` for lookups and
``INSERT ... SELECT * FROM unnest(...)`` for inserts, both supported by PostgreSQL and
CockroachDB. Table and column names come from the models, so a rename cannot drift.

Everything runs on the caller's connection, inside the caller's transaction. On SQLite (the
no-server quick start) the same functions fall back to the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from django.db import connection, models

from apps.ledger.models import Transaction as LedgerTransaction
from apps.mempool.choices import RemovalReason
from apps.mempool.models import MempoolTransaction, PendingDeadLetter, ProducerNonce

__all__ = ["NewTransaction", "arrays_supported", "insert_nonces", "insert_transactions",
           "known_tx_ids", "record_evictions", "record_expired", "recorded_nonces",
           "set_lock_timeout"]

_POOL = MempoolTransaction._meta.db_table
_PENDING = PendingDeadLetter._meta.db_table
_LEDGER = LedgerTransaction._meta.db_table
_NONCES = ProducerNonce._meta.db_table
_ARRAY_VENDORS = frozenset({"postgresql", "cockroachdb"})
_ORM_CHUNK = 500  # stays under SQLite's bound-parameter limit


def arrays_supported() -> bool:
    """Whether the database takes array parameters (PostgreSQL, CockroachDB)."""
    return connection.vendor in _ARRAY_VENDORS


def set_lock_timeout(milliseconds: int) -> None:
    """Bound how long the current transaction waits for a lock: a stuck lock holder makes
    admission raise (the caller retries later) instead of hanging the ingest loop."""
    if arrays_supported() and milliseconds > 0:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{int(milliseconds)}ms'")


def _array_cursor() -> psycopg.Cursor[Any]:
    """A cursor on the caller's connection and transaction that binds parameters on the
    server. Django's psycopg backend quotes parameters into the SQL text on the client, which
    for a 500-element ``bytea[]`` array is hex-escaping and array-quoting every element in
    Python (a fifth of an admission batch's time, measured with cProfile). The statements
    here use ``%b`` placeholders: binary arrays, each element sent as length + raw bytes."""
    connection.ensure_connection()
    raw = connection.connection
    if not isinstance(raw, psycopg.Connection):  # pragma: no cover - psycopg 3 backends only
        raise RuntimeError("the array statements need a psycopg 3 connection")
    return psycopg.Cursor(raw)


def _chunks(items: Sequence[bytes]) -> list[list[bytes]]:
    return [list(items[start:start + _ORM_CHUNK]) for start in range(0, len(items), _ORM_CHUNK)]


def known_tx_ids(tx_ids: Sequence[bytes]) -> set[bytes]:
    """Which of ``tx_ids`` are in the mempool or in the ledger."""
    if not tx_ids:
        return set()
    if not arrays_supported():
        known: set[bytes] = set()
        for chunk in _chunks(tx_ids):
            for model in (MempoolTransaction, LedgerTransaction):
                known.update(bytes(tx_id) for tx_id in model.objects.filter(
                    tx_id__in=chunk).values_list("tx_id", flat=True))
        return known
    ids = list(tx_ids)
    with _array_cursor() as cursor:
        cursor.execute(f"SELECT tx_id FROM {_POOL} WHERE tx_id = ANY(%b) "  # noqa: S608
                       f"UNION SELECT tx_id FROM {_LEDGER} WHERE tx_id = ANY(%b)", [ids, ids])
        return {bytes(row[0]) for row in cursor.fetchall()}


def recorded_nonces(keys: Sequence[tuple[str, bytes]]) -> dict[tuple[str, bytes], bytes]:
    """The transaction id recorded for each (producer id, nonce) that has one."""
    if not keys:
        return {}
    if not arrays_supported():
        wanted = set(keys)
        found: dict[tuple[str, bytes], bytes] = {}
        for chunk in _chunks([nonce for _, nonce in keys]):
            rows = ProducerNonce.objects.filter(
                producer_id__in={producer_id for producer_id, _ in keys}, nonce__in=chunk
            ).values_list("producer_id", "nonce", "tx_id")
            for producer_id, nonce, tx_id in rows:
                if (producer_id, bytes(nonce)) in wanted:
                    found[(producer_id, bytes(nonce))] = bytes(tx_id)
        return found
    with _array_cursor() as cursor:
        cursor.execute(
            f"SELECT n.producer_id, n.nonce, n.tx_id FROM {_NONCES} AS n "  # noqa: S608
            "JOIN unnest(%b::text[], %b::bytea[]) AS k(producer_id, nonce) "
            "ON n.producer_id = k.producer_id AND n.nonce = k.nonce",
            [[producer_id for producer_id, _ in keys], [nonce for _, nonce in keys]])
        return {(producer_id, bytes(nonce)): bytes(tx_id)
                for producer_id, nonce, tx_id in cursor.fetchall()}


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """One row of ``mempool_transactions`` (see :class:`MempoolTransaction`)."""

    tx_id: bytes
    wire: bytes
    kind: str
    producer_id: str
    key_id: str
    nonce: bytes
    created_at_ms: int
    admitted_at_ms: int
    expires_at_ms: int
    weight: int
    priority: int
    source: str


_COLUMNS = ("tx_id", "wire", "kind", "producer_id", "key_id", "nonce", "created_at_ms",
            "admitted_at_ms", "expires_at_ms", "weight", "priority", "size_bytes", "source")
_TYPES = ("bytea", "bytea", "text", "text", "text", "bytea", "bigint", "bigint", "bigint",
          "integer", "bigint", "integer", "text")
_INSERT_POOL = (f"INSERT INTO {_POOL} ({', '.join(_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
                + ", ".join(f"%b::{sql_type}[]" for sql_type in _TYPES) + ")")


def insert_transactions(rows: Sequence[NewTransaction]) -> None:
    if not rows:
        return
    if not arrays_supported():
        MempoolTransaction.objects.bulk_create([MempoolTransaction(
            tx_id=row.tx_id, wire=row.wire, kind=row.kind, producer_id=row.producer_id,
            key_id=row.key_id, nonce=row.nonce, created_at_ms=row.created_at_ms,
            admitted_at_ms=row.admitted_at_ms, expires_at_ms=row.expires_at_ms,
            weight=row.weight, priority=row.priority, size_bytes=len(row.wire),
            source=row.source) for row in rows], batch_size=_ORM_CHUNK // 13)
        return
    columns: list[list[object]] = [
        [row.tx_id for row in rows], [row.wire for row in rows], [row.kind for row in rows],
        [row.producer_id for row in rows], [row.key_id for row in rows],
        [row.nonce for row in rows], [row.created_at_ms for row in rows],
        [row.admitted_at_ms for row in rows], [row.expires_at_ms for row in rows],
        [row.weight for row in rows], [row.priority for row in rows],
        [len(row.wire) for row in rows], [row.source for row in rows]]
    with _array_cursor() as cursor:
        cursor.execute(_INSERT_POOL, columns)


def insert_nonces(rows: Sequence[tuple[str, bytes, bytes, int]]) -> None:
    """Insert (producer id, nonce, tx id, created at ms) rows."""
    if not rows:
        return
    if not arrays_supported():
        ProducerNonce.objects.bulk_create([ProducerNonce(
            producer_id=producer_id, nonce=nonce, tx_id=tx_id, created_at_ms=created_at_ms)
            for producer_id, nonce, tx_id, created_at_ms in rows], batch_size=_ORM_CHUNK // 4)
        return
    with _array_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_NONCES} (producer_id, nonce, tx_id, created_at_ms) "  # noqa: S608
            "SELECT * FROM unnest(%b::text[], %b::bytea[], %b::bytea[], %b::bigint[])",
            [[row[0] for row in rows], [row[1] for row in rows], [row[2] for row in rows],
             [row[3] for row in rows]])


# --- rows leaving the pool without a block: kept for the DLQ (see PendingDeadLetter) --------

_PENDING_INSERT = (f"INSERT INTO {_PENDING} (tx_id, wire, kind, source, reason, detail, "  # noqa: S608
                   "removed_at_ms) SELECT p.tx_id, p.wire, p.kind, p.source, %b, {detail}, %b "
                   f"FROM {_POOL} AS p {{where}} ON CONFLICT (tx_id) DO UPDATE SET "
                   "reason = excluded.reason, detail = excluded.detail, "
                   "removed_at_ms = excluded.removed_at_ms")


def _record_with_orm(rows: models.QuerySet[MempoolTransaction], *, reason: RemovalReason,
                     removed_at_ms: int, details: dict[bytes, str] | None = None,
                     detail: str = "") -> None:
    batch: list[PendingDeadLetter] = []
    for tx_id, wire, kind, source in rows.values_list(
            "tx_id", "wire", "kind", "source").iterator(chunk_size=_ORM_CHUNK):
        batch.append(PendingDeadLetter(
            tx_id=bytes(tx_id), wire=bytes(wire), kind=kind, source=source, reason=reason,
            detail=(details or {}).get(bytes(tx_id), detail), removed_at_ms=removed_at_ms))
        if len(batch) >= _ORM_CHUNK // 7:
            _upsert_pending(batch)
            batch = []
    _upsert_pending(batch)


def _upsert_pending(rows: list[PendingDeadLetter]) -> None:
    # A row still pending from an earlier removal of the same transaction takes the new
    # removal's time, so the drain's (tx id, removed at) delete cannot drop the newer one.
    if rows:
        PendingDeadLetter.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["tx_id"],
            update_fields=["reason", "detail", "removed_at_ms"])


def record_evictions(details: dict[bytes, str], *, removed_at_ms: int) -> None:
    """Keep the pool rows of ``details`` (tx id -> why) as pending dead letters with reason
    ``evicted``. Inside the transaction that then deletes them from the pool."""
    if not details:
        return
    if not arrays_supported():
        _record_with_orm(MempoolTransaction.objects.filter(tx_id__in=list(details)),
                         reason=RemovalReason.EVICTED, removed_at_ms=removed_at_ms,
                         details=details)
        return
    sql = _PENDING_INSERT.format(
        detail="v.detail",
        where="JOIN unnest(%b::bytea[], %b::text[]) AS v(tx_id, detail) ON p.tx_id = v.tx_id")
    with _array_cursor() as cursor:
        cursor.execute(sql, [RemovalReason.EVICTED.value, removed_at_ms, list(details),
                             list(details.values())])


def record_expired(now_ms: int) -> None:
    """Keep the pool rows expired at ``now_ms`` as pending dead letters with reason
    ``expired``. Inside the transaction that then deletes them from the pool."""
    detail = "its TTL passed before a block carried it"
    if not arrays_supported():
        _record_with_orm(MempoolTransaction.objects.filter(expires_at_ms__lte=now_ms),
                         reason=RemovalReason.EXPIRED, removed_at_ms=now_ms, detail=detail)
        return
    sql = _PENDING_INSERT.format(detail="%b", where="WHERE p.expires_at_ms <= %b")
    with _array_cursor() as cursor:
        cursor.execute(sql, [RemovalReason.EXPIRED.value, detail, now_ms, now_ms])
