"""Serializer fields for the binary values of the ledger: hex on the wire, bytes inside."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def to_bytes(value: Any) -> bytes:
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


@extend_schema_field({"type": "string", "pattern": "^([0-9a-f]{2})*$",
                      "description": "lowercase hex"})
class HexField(serializers.Field[bytes, str, str, Any]):
    """Bytes as lowercase hex (``length``: exact byte length accepted on input)."""

    def __init__(self, *, length: int | None = None, **kwargs: Any) -> None:
        self.length = length
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return to_bytes(value).hex()

    def to_internal_value(self, data: Any) -> bytes:
        if not isinstance(data, str) or len(data) > 2 * (self.length or 4096):
            raise serializers.ValidationError("Must be a hex string.")
        try:
            value = bytes.fromhex(data)
        except ValueError:
            raise serializers.ValidationError("Must be a hex string.") from None
        if self.length is not None and len(value) != self.length:
            raise serializers.ValidationError(f"Must be {self.length} bytes "
                                              f"({2 * self.length} hex characters).")
        return value


@extend_schema_field({"type": "string", "format": "byte", "description": "base64"})
class Base64Field(serializers.Field[bytes, str, str, Any]):
    """Bytes as standard base64 (``max_bytes`` bounds the decoded size on input)."""

    def __init__(self, *, max_bytes: int = 1 << 16, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        return base64.b64encode(to_bytes(value)).decode()

    def to_internal_value(self, data: Any) -> bytes:
        if not isinstance(data, str) or len(data) > 4 * (self.max_bytes // 3 + 1):
            raise serializers.ValidationError(
                f"Must be base64 of at most {self.max_bytes} bytes.")
        try:
            value = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Must be valid base64.") from None
        if not value or len(value) > self.max_bytes:
            raise serializers.ValidationError(
                f"Must be base64 of 1 to {self.max_bytes} bytes.")
        return value
