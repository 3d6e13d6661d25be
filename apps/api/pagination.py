"""Keyset ("cursor") pagination, newest first: every page is one index range scan.

A page is ``ORDER BY k1 DESC, k2 DESC LIMIT n + 1`` below the position of the previous page's
last row (a row-value comparison ``(k1, k2) < (v1, v2)``, which PostgreSQL and CockroachDB
serve from an index on ``(k1, k2)``). Unlike ``OFFSET``, the cost of page 1000 is the cost of
page 1, and rows committed while a client pages do not shift what it sees. The cursor is
opaque to clients (base64url JSON of the key values); a tampered cursor is a 400.

A view declares ``cursor_fields = (("height", int),)`` (names and types, most significant first;
``int``, ``str``, ``bytes``, ``datetime`` or ``uuid.UUID``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import F
from django.db.models.fields.tuple_lookups import Tuple, TupleLessThan
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_CURSOR_CHARS = 512
_LIMIT = re.compile(r"^[0-9]{1,4}$")

CursorFields = tuple[tuple[str, type], ...]


def _encode_value(value: Any, kind: type) -> Any:
    if kind is bytes:
        return bytes(value).hex()
    if kind is datetime:
        return value.isoformat()
    if kind is uuid.UUID:
        return str(value)
    return value


def _decode_text(value: Any, kind: type) -> Any:
    """A datetime (with its offset) or a UUID from its text; ValueError otherwise."""
    if kind is datetime:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive datetime")
        return moment
    if kind is uuid.UUID:
        return uuid.UUID(value)
    return bytes.fromhex(value)


def _decode_value(value: Any, kind: type) -> Any:
    if kind is int and type(value) is int and -(1 << 63) <= value < (1 << 63):
        return value
    if kind is str and isinstance(value, str) and len(value) <= 300:
        return value
    if kind in (bytes, datetime, uuid.UUID) and isinstance(value, str) and len(value) <= 128:
        try:
            return _decode_text(value, kind)
        except ValueError:
            pass
    raise ValidationError({"cursor": ["Invalid cursor."]})


def encode_cursor(values: list[Any], fields: CursorFields) -> str:
    plain = [_encode_value(value, kind) for value, (_, kind) in zip(values, fields, strict=True)]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()
                                    ).decode().rstrip("=")


def decode_cursor(cursor: str, fields: CursorFields) -> list[Any]:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise ValidationError({"cursor": ["Invalid cursor."]})
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError({"cursor": ["Invalid cursor."]}) from None
    if not isinstance(values, list) or len(values) != len(fields):
        raise ValidationError({"cursor": ["Invalid cursor."]})
    return [_decode_value(value, kind) for value, (_, kind) in zip(values, fields, strict=True)]


def parse_limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not _LIMIT.match(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise ValidationError({"limit": [f"Must be an integer from 1 to {MAX_LIMIT}."]})
    return int(text)


class KeysetPagination(BasePagination):
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset: Any, request: Request,
                          view: Any = None) -> list[Any]:
        fields: CursorFields = view.cursor_fields
        self.request, self.fields = request, fields
        limit = parse_limit(request)
        names = [name for name, _ in fields]
        queryset = queryset.order_by(*(f"-{name}" for name in names))
        cursor = request.query_params.get(self.cursor_query_param)
        if cursor:
            position = decode_cursor(cursor, fields)
            if len(names) == 1:
                queryset = queryset.filter(**{f"{names[0]}__lt": position[0]})
            else:
                queryset = queryset.filter(
                    TupleLessThan(Tuple(*(F(name) for name in names)), tuple(position)))
        return self._page(list(queryset[:limit + 1]), limit)

    def paginate_rows(self, fetch: Callable[[list[Any] | None, int], list[Any]],
                      request: Request, view: Any) -> list[Any]:
        """Like :meth:`paginate_queryset` for reads that are not one queryset: ``fetch(
        position, count)`` returns up to ``count`` rows, newest first, strictly below
        ``position`` (the decoded cursor; None on the first page)."""
        fields: CursorFields = view.cursor_fields
        self.request, self.fields = request, fields
        limit = parse_limit(request)
        cursor = request.query_params.get(self.cursor_query_param)
        return self._page(fetch(decode_cursor(cursor, fields) if cursor else None, limit + 1),
                          limit)

    def _page(self, rows: list[Any], limit: int) -> list[Any]:
        """``limit`` of ``rows`` (which has ``limit + 1`` when there is a next page)."""
        self.next_position = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            self.next_position = [_row_value(last, name) for name, _ in self.fields]
        return rows

    def get_next_link(self) -> str | None:
        if self.next_position is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param,
                                   encode_cursor(self.next_position, self.fields))

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self.get_next_link(), "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri",
                         "description": "URL of the next (older) page; null on the last"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {"name": self.cursor_query_param, "required": False, "in": "query",
             "description": "Opaque position from a previous page's `next`",
             "schema": {"type": "string", "maxLength": MAX_CURSOR_CHARS}},
            {"name": "limit", "required": False, "in": "query",
             "description": f"Page size (default {DEFAULT_LIMIT})",
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        ]


def _row_value(row: Any, name: str) -> Any:
    value = row[name] if isinstance(row, dict) else getattr(row, name)
    return bytes(value) if isinstance(value, memoryview) else value
