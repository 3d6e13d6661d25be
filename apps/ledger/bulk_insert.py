"""Fast multi-row inserts for the block commit (tens of thousands of rows per block).

* PostgreSQL: ``COPY ... FROM STDIN (FORMAT BINARY)`` on the commit's own connection, hence
  inside its transaction; psycopg writes the rows in C.
* CockroachDB (no binary COPY): one ``INSERT ... SELECT * FROM unnest($1::bytea[], ...)``
  statement with the columns as binary array parameters.
* Anything else (the SQLite quick start): the ORM's ``bulk_create``.

The ORM's ``bulk_create`` spent most of a 1 000-transaction block's commit building SQL text;
see ``bench/bench_ledger.py``. Table and column names come from our models only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from django.db import connections, models
from psycopg.types.json import Jsonb

_BATCH = 1000
_TYPE_MODIFIER = re.compile(r"\(.*\)$")
# Django's column types as psycopg knows them (modifiers such as varchar(64) dropped).
_PG_TYPES = {"bigint": "int8", "integer": "int4", "smallint": "int2", "boolean": "bool",
             "timestamp with time zone": "timestamptz", "varchar": "varchar",
             "bytea": "bytea", "jsonb": "jsonb", "uuid": "uuid", "text": "text"}


def _columns(model: type[models.Model], fields: Sequence[str],
             connection: Any) -> list[tuple[str, str, bool]]:
    """(column, SQL type without modifier, is JSON) for each of ``fields``."""
    columns = []
    for name in fields:
        field = model._meta.get_field(name)
        sql_type = _TYPE_MODIFIER.sub("", str(field.db_type(connection)))
        columns.append((str(field.column), sql_type,  # type: ignore[union-attr]
                        isinstance(field, models.JSONField)))
    return columns


def insert_rows(
    model: type[models.Model],
    fields: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    using: str = "default",
) -> None:
    """Insert ``rows`` (values in the order of ``fields``, Python values as the model's
    fields take them) into ``model``'s table, in the caller's transaction."""
    if not rows:
        return
    connection = connections[using]
    if connection.vendor == "postgresql":
        copy_rows(model, fields, rows, using=using)
    elif connection.vendor == "cockroachdb":
        unnest_rows(model, fields, rows, using=using)
    else:
        model._default_manager.db_manager(using).bulk_create(
            [model(**dict(zip(fields, row, strict=True))) for row in rows], batch_size=_BATCH)


def _prepared(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]],
              connection: Any) -> tuple[list[tuple[str, str, bool]], Sequence[Sequence[Any]]]:
    columns = _columns(model, fields, connection)
    json_at = {index for index, (_, _, is_json) in enumerate(columns) if is_json}
    if json_at:
        rows = [[Jsonb(value) if index in json_at and value is not None else value
                 for index, value in enumerate(row)] for row in rows]
    return columns, rows


def copy_rows(model: type[models.Model], fields: Sequence[str],
              rows: Sequence[Sequence[Any]], *, using: str = "default") -> None:
    """PostgreSQL: binary ``COPY`` on the Django connection (so in its transaction)."""
    connection = connections[using]
    connection.ensure_connection()
    columns, rows = _prepared(model, fields, rows, connection)
    names = ", ".join(column for column, _, _ in columns)
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor, \
            cursor.copy(f"COPY {model._meta.db_table} ({names}) FROM STDIN (FORMAT BINARY)"
                        ) as copy:
        copy.set_types([_PG_TYPES[sql_type] for _, sql_type, _ in columns])
        for row in rows:
            copy.write_row(row)


def unnest_rows(model: type[models.Model], fields: Sequence[str],
                rows: Sequence[Sequence[Any]], *, using: str = "default") -> None:
    """CockroachDB (also valid on PostgreSQL): one INSERT of binary array parameters."""
    connection = connections[using]
    connection.ensure_connection()
    columns, rows = _prepared(model, fields, rows, connection)
    names = ", ".join(column for column, _, _ in columns)
    arrays = [[row[index] for row in rows] for index in range(len(columns))]
    unnests = ", ".join(f"%b::{sql_type}[]" for _, sql_type, _ in columns)
    aliases = ", ".join(f"c{index}" for index in range(len(columns)))
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(f"INSERT INTO {model._meta.db_table} ({names}) "  # noqa: S608
                       f"SELECT {aliases} FROM unnest({unnests}) AS t({aliases})", arrays)
