"""Structured JSON logs with secrets redacted.

One structlog processor chain serves both structlog loggers and the standard library loggers
(Django, Celery, confluent-kafka), so every line leaves the process as one JSON object with the
context bound by the caller (node_id, height, view, request_id). Redaction runs last before
rendering, on keys *and* on values that look like credentials, so a secret that reaches a log
call by accident still never reaches the log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

REDACTED = "[REDACTED]"

# Key names whose values are secrets, matched case-insensitively as substrings.
_SECRET_KEY_PATTERN = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key|signing[_-]?key|seed|"
    r"authorization|cookie|session[_-]?id|credential|sasl)",
    re.IGNORECASE,
)
# Names of secrets (not secrets): the words that introduce a secret value in free text.
_SENSITIVE_WORDS = (r"(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|private[_-]?key"
                 r"|authorization)")
# Values that are secrets whatever key they sit under: (pattern, replacement) pairs.
_SECRET_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Bearer abc...", "Token abc...", "Basic abc..."
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    # password=x, token=x (query strings, form bodies, DSNs)
    (re.compile(rf"(?i)\b({_SENSITIVE_WORDS})=([^&\s\"',;]+)"), rf"\1={REDACTED}"),
    # password: x, "password": "x", 'token': 'x' (free text, JSON and Python reprs)
    (re.compile(rf"(?i)([\"']?\b{_SENSITIVE_WORDS}[\"']?\s*:\s*)([\"'])(.*?)\2"),
     rf"\1\2{REDACTED}\2"),
    (re.compile(rf"(?i)(\b{_SENSITIVE_WORDS}\s*:\s*)([^\s\"',;}}]+)"), rf"\1{REDACTED}"),
    # credentials inside URLs, with or without a user name: scheme://user:pw@host, scheme://:pw@h
    (re.compile(r"(?i)(://[^:/@\s]*:)([^@\s]+)(@)"), rf"\1{REDACTED}\3"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
     REDACTED),
)


def redact_value(value: Any) -> Any:
    """Redact secret-looking substrings in ``value`` (strings, and containers recursively)."""
    if isinstance(value, str):
        for pattern, replacement in _SECRET_VALUE_PATTERNS:
            value = pattern.sub(replacement, value)
        return value
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item) for item in value)
    if isinstance(value, bytes | bytearray) and len(value) >= 16:
        # Raw key material is bytes; there is no reason to log long raw bytes.
        return REDACTED
    return value


def redact_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: (REDACTED if isinstance(key, str) and _SECRET_KEY_PATTERN.search(key)
              and not isinstance(mapping[key], bool) else redact_value(mapping[key]))
        for key in mapping
    }


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """structlog processor: replace secret values before rendering."""
    return redact_mapping(event_dict)


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
]


def build_logging_config(*, level: str, fmt: str) -> dict[str, Any]:
    """Return a dictConfig for Django's LOGGING and configure structlog to match."""
    renderer: Any = (structlog.dev.ConsoleRenderer(colors=False) if fmt == "console"
                     else structlog.processors.JSONRenderer(sort_keys=True))
    structlog.configure(
        processors=[*SHARED_PROCESSORS, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    redact_secrets,
                    renderer,
                ],
                "foreign_pre_chain": SHARED_PROCESSORS,
            },
        },
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "WARNING"},
            "daphne": {"level": "WARNING"},
        },
    }


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


__all__ = ["REDACTED", "build_logging_config", "get_logger", "logging", "redact_secrets",
           "redact_value"]
